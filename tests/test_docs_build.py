"""The API reference (Sphinx with numpydoc and the pydata theme, as dask and scikit-learn build
theirs) builds from the docstrings without a warning."""

import pathlib
import shutil

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def test_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra (sphinx, numpydoc, pydata-sphinx-theme) is not installed")
    pytest.importorskip("numpydoc")
    pytest.importorskip("pydata_sphinx_theme")
    from sphinx.cmd.build import build_main

    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("generated", "_build"))
    warnings = tmp_path / "warnings.txt"
    status = build_main(["-W", "--keep-going", "-q", "-b", "html", "-w", str(warnings), str(source),
                         str(tmp_path / "html")])
    assert status == 0, warnings.read_text()[:5000]
    assert (tmp_path / "html" / "api.html").exists()
    assert (tmp_path / "html" / "generated" / "daskpml.linalg.eigsh.html").exists()
