"""Distributed sparse products on a generated graph (runs on the embedded local cluster).

    python examples/sparse_products.py [--nodes 100000]
"""

import argparse
import time

import numpy as np
from distributed import wait

import daskpml
from daskpml.datasets import make_sbm
from daskpml.runtime import persist_with_progress


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100_000)
    args = parser.parse_args()
    client = daskpml.connect()
    A, labels = make_sbm(args.nodes, 8, in_degree=16, out_degree=4, shuffle=True, random_state=0)
    (A,) = persist_with_progress(A)
    print(A, "stored entries:", A.nnz)
    # random-walk matrix: each row sums to one
    P = A.scale_rows(1.0 / A.sum(axis=1))
    x = np.full(args.nodes, 1.0 / args.nodes)
    start = time.perf_counter()
    for _ in range(10):  # ten steps of the random walk x <- x P, the vector stays distributed
        x = (x @ P).persist()
        wait(x)
    print(f"10 random-walk steps in {time.perf_counter() - start:.2f} s; mass = {float(x.sum().compute()):.6f}")
    two_step = (P @ P).prune(1e-3)
    (two_step,) = persist_with_progress(two_step)
    print("two-step walk matrix, pruned at 1e-3:", two_step.nnz, "entries")
    client.close()


if __name__ == "__main__":
    main()
