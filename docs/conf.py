"""Sphinx configuration of daskpml's API reference (``sphinx-build -W -b html docs docs/_build``)."""

import daskpml

project = "daskpml"
author = "the daskpml developers"
release = version = getattr(daskpml, "__version__", "0.1")
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc", "sphinx.ext.intersphinx"]
autosummary_generate = True
templates_path = ["_templates"]
autodoc_typehints = "none"                  # the numpydoc Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_validation_checks = set()          # tests/test_docs.py runs numpydoc's validation
html_theme = "pydata_sphinx_theme"
html_title = "daskpml"
exclude_patterns = ["_build"]
intersphinx_mapping = {}
nitpicky = False
