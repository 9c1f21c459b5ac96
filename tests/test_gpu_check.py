"""benchmarks/gpu_check.py: its dry run on the CPU passes (CI keeps the GPU check working), and it
turns a test report into one line per failure."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.distributed
def test_the_dry_run_passes_and_writes_its_report(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=900, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = result["steps"]
    assert result["dry_run"] and result["failures"] == []
    assert set(steps) == {"setup", "env", "tests", "families", "figures"}
    assert steps["env"]["status"] == "skipped" or steps["env"]["gpus"] > 0
    assert steps["tests"]["skipped"] + steps["tests"]["passed"] > 50          # the gpu-marked tests ran or skipped
    assert all(row["status"] == "ok" for row in steps["families"]["families"].values())
    assert len(steps["families"]["families"]) == 10
    figs = steps["figures"]["figures"]
    assert figs["device"]["copy_GB_s"] > 0 and figs["spmv"]["spmv_GB_s"] > 0 and figs["nmf"]["GFLOP_s"] > 0
    assert figs["lanczos"]["converged"] and figs["gcn"]["epoch_ms"] > 0
    assert figs["allreduce"]["ranks"] == 2 and figs["allreduce"]["over"] == "host"
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith("# GPU check (dry run on the CPU)") and "| spmv |" in table
    assert not list(tmp_path.glob("*.tmp"))                                     # written atomically


def test_a_failed_test_becomes_one_line_with_its_id(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest">'
        '<testcase classname="tests.csr.test_csr" name="test_matmul[cupy]" time="0.1">'
        '<failure message="TypeError: Implicit conversion to a NumPy array is not allowed">tb</failure></testcase>'
        '<testcase classname="tests.csr.test_csr" name="test_matmul[numpy]" time="0.1"/>'
        '<testcase classname="tests.csr.test_csr" name="test_spgemm[cupy]" time="0.0">'
        '<skipped message="no GPU"/></testcase>'
        '<testcase classname="tests.test_x" name="test_setup" time="0.0"><error message="fixture broke"/></testcase>'
        '</testsuite></testsuites>')
    counts, lines = _module().junit_failures(report)
    assert counts == {"passed": 1, "failed": 2, "skipped": 1}
    assert lines == ["FAIL tests/csr/test_csr.py::test_matmul[cupy]: TypeError: Implicit conversion to a NumPy "
                     "array is not allowed", "FAIL tests/test_x.py::test_setup: fixture broke"]


def test_the_markdown_lists_failures_and_figures():
    text = _module().markdown({
        "dry_run": False, "failures": ["FAIL family nmf: boom"],
        "steps": {"setup": {"status": "ok", "seconds": 0.1},
                  "figures": {"status": "ok", "seconds": 3.0,
                              "figures": {"spmv": {"spmv_GB_s": 900.0, "spmv_of_copy": 0.45}}}}})
    assert text.startswith("# GPU check\n") and "| spmv | spmv_GB_s 900.0, spmv_of_copy 0.45 |" in text
    assert "- FAIL family nmf: boom" in text
