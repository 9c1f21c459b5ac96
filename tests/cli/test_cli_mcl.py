"""``daskpml mcl`` on an .abc file: mcl's input conventions and output format."""

from __future__ import annotations

import shutil
import subprocess

from click.testing import CliRunner

from daskpml.cli import cli
from daskpml.results import read_netcdf

LOCAL = ["--workers", "1", "--threads", "2"]
GRAPH = "a\tb\t1\nb\tc\t1\na\tc\t1\nc\td\t1\nd\te\t1\ne\tf\t1\nd\tf\t1\nx\ty\t1\nb\ta\t0.5\nz\tz\t1\n"


def test_mcl_command_writes_clusters_as_mcl(tmp_path):
    graph, out, hist = tmp_path / "g.abc", tmp_path / "clusters.txt", tmp_path / "history.nc"
    graph.write_text(GRAPH)
    result = CliRunner().invoke(cli, [*LOCAL, "mcl", str(graph), "-I", "2.0", "--out", str(out), "--history",
                                      str(hist)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "4 clusters of 9 nodes" in result.output and "converged" in result.output
    lines = out.read_text().splitlines()
    assert lines == ["a\tb\tc", "d\te\tf", "x\ty", "z"]
    assert read_netcdf(hist).chaos.values[-1] < 1e-6
    if shutil.which("mcl"):
        subprocess.run(["mcl", str(graph), "--abc", "-I", "2.0", "-o", str(tmp_path / "theirs")], check=True,
                       capture_output=True)
        assert (tmp_path / "theirs").read_text().splitlines() == lines


def test_mcl_command_refuses_a_bad_weight(tmp_path):
    graph = tmp_path / "g.abc"
    graph.write_text("a\tb\t1\nb\tc\t-2\n")
    result = CliRunner().invoke(cli, [*LOCAL, "mcl", str(graph), "--out", str(tmp_path / "o.txt")])
    assert result.exit_code != 0 and "negative" in result.output
