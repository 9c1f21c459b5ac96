"""Seeded chunked generators, loaders and writers of data sets."""

from ._generators import make_blobs, make_classification, make_low_rank, make_regression
from ._io import (
    EDGE_LIST_SUFFIXES,
    LoadedGraph,
    Planetoid,
    load_csv,
    load_digits,
    load_graph,
    load_karate,
    load_matrix,
    load_planetoid,
    load_svmlight,
    read_array,
    read_clusters,
    save_graph,
    save_npz,
    write_clusters,
    write_labels,
    write_netcdf,
)
from ._sbm import make_sbm

__all__ = [
    "EDGE_LIST_SUFFIXES", "LoadedGraph", "Planetoid", "load_csv", "load_digits", "load_graph", "load_karate", "load_matrix",
    "load_planetoid", "load_svmlight", "make_blobs", "make_classification", "make_low_rank",
    "make_regression", "make_sbm", "read_array", "read_clusters", "save_graph", "save_npz", "write_clusters", "write_labels",
    "write_netcdf",
]
