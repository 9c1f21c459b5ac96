"""Every setting daskpml reads has its default in daskpml.yaml, and only there."""

import ast
import pathlib

import pytest

import daskpml
from daskpml import _config

PACKAGE = pathlib.Path(daskpml.__file__).parent


#: core helpers that read the setting named by their last argument (``is_small(size, "x.local-bytes")``)
SETTING_READERS = {"is_small", "block_rows"}


def _config_calls():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and isinstance(func.value, ast.Name) \
                    and func.value.id == "_config":
                if path.name == "_blocks.py" and isinstance(node.args[0], ast.Name):
                    continue                    # the readers below: their callers' keys are checked
                yield path.relative_to(PACKAGE.parent), node
            elif isinstance(func, ast.Name) and func.id in SETTING_READERS:
                yield path.relative_to(PACKAGE.parent), ast.Call(func=func, args=[node.args[-1]], keywords=[],
                                                                 lineno=node.lineno)


CALLS = list(_config_calls())


def test_settings_are_read_somewhere():
    assert len(CALLS) > 20


@pytest.mark.parametrize("where,call", CALLS, ids=[f"{p}:{c.lineno}" for p, c in CALLS])
def test_every_setting_is_declared_in_the_yaml_without_inline_default(where, call):
    assert len(call.args) == 1 and not call.keywords, f"{where}:{call.lineno} passes a default inline"
    key = call.args[0]
    assert isinstance(key, ast.Constant) and isinstance(key.value, str), f"{where}:{call.lineno}: key not a literal"
    node = _config.defaults["daskpml"]
    for part in key.value.split("."):
        assert isinstance(node, dict) and part in node, f"daskpml.{key.value} ({where}:{call.lineno}) not in the YAML"
        node = node[part]


def test_an_undeclared_setting_is_an_error():
    with pytest.raises(KeyError, match="daskpml.no-such-setting is not a daskpml setting"):
        _config.get("no-such-setting")


def test_settings_are_read_at_call_time():
    import dask

    with dask.config.set({"daskpml.sparse.block-nnz": 7}):
        assert _config.get("sparse.block-nnz") == 7
    assert _config.get("sparse.block-nnz") == 4_000_000
