"""The documentation a user reads is checked: every example in a docstring runs (doctest), and every
public function and class has a numpydoc docstring with its parameters, what it returns and an
example (``numpydoc.validate``)."""

import doctest
import importlib
import inspect
import sys
import warnings

import pytest

#: the modules whose ``__all__`` is the public API
PUBLIC = ["daskpml", "daskpml.backend", "daskpml.runtime", "daskpml.validation", "daskpml.results", "daskpml.perf",
          "daskpml.plot", "daskpml.comm", "daskpml.sparse", "daskpml.partition", "daskpml.linalg", "daskpml.graph", "daskpml.optim",
          "daskpml.linear_model", "daskpml.cluster", "daskpml.decomposition", "daskpml.gnn", "daskpml.svm",
          "daskpml.datasets"]

#: numpydoc's codes that say a docstring lacks what a user needs: no docstring (GL08), a parameter
#: not documented (PR01) or documented but not taken (PR02), no Returns (RT01, functions), no
#: Examples (EX01), no summary (SS01)
REQUIRED = {"GL08", "PR01", "PR02", "RT01", "EX01", "SS01"}


def _public():
    seen, out = set(), []
    for name in PUBLIC:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and id(obj) not in seen \
                    and getattr(obj, "__module__", "").startswith("daskpml"):
                seen.add(id(obj))
                out.append((f"{name}.{attr}", obj))
    return out


OBJECTS = _public()


def _doctests():
    """The examples of each public module's docstring and of each public object (and its methods),
    run in the namespace of the module that defines the object."""
    import numpy

    tests, seen = [], set()
    sources = [(importlib.import_module(name), False) for name in PUBLIC] + [(obj, True) for _, obj in OBJECTS]
    for owner, recurse in sources:
        home = sys.modules[owner.__module__] if recurse else owner
        finder = doctest.DocTestFinder(exclude_empty=True, recurse=recurse)
        for test in finder.find(owner, owner.__name__, module=home, globs={"np": numpy, **vars(home)}):
            if test.examples and test.name not in seen:
                seen.add(test.name)
                tests.append(test)
    return tests


DOCTESTS = _doctests()


def test_the_public_api_is_found():
    assert len(OBJECTS) > 150 and len(DOCTESTS) > 30


@pytest.mark.parametrize("test", DOCTESTS, ids=lambda t: t.name)
def test_docstring_examples_run(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # a ConvergenceWarning in an example is what a user sees too
        result = runner.run(test, out=report.append, clear_globs=False)
    if result.failed:
        pytest.fail("".join(report)[:4000])


def _problems(path, obj):
    from numpydoc.validate import validate

    codes = {code for code, _ in validate(path)["errors"]} & REQUIRED
    if inspect.isclass(obj):
        codes.discard("RT01")                  # a class returns an instance
    return codes


@pytest.mark.parametrize("path,obj", OBJECTS, ids=[p for p, _ in OBJECTS])
def test_numpydoc_docstring(path, obj):
    pytest.importorskip("numpydoc")
    problems = _problems(path, obj)
    assert not problems, f"{path}: numpydoc {sorted(problems)}"
