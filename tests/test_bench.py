"""Smoke test of the benchmark suite: it runs, its figures are sane, and it
leaves no process behind.  No timing is asserted: speed is the benchmark's
business, not the test suite's."""
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

pytestmark = [
    pytest.mark.skipif(not RUNNER.exists(), reason="no benchmarks/ beside the tests"),
    pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                       reason="the benchmarks need a C compiler"),
]


def load_runner():
    spec = importlib.util.spec_from_file_location("ngi_bench_run", RUNNER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def children():
    """Processes whose parent is this one (running or not yet reaped)."""
    mine = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                mine.append(int(entry.name))
    return set(mine)


def test_quick_run_gives_sane_figures_and_ratios(tmp_path, capsys):
    run = load_runner()
    before = children()
    out = tmp_path / "bench.json"
    status = run.main(["--quick", "--repeat", "2", "--duration", "0.2",
                       "--servers", "ngi,c", "--scenarios", "pingpong-1x64,udp-64",
                       "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err

    assert children() <= before, "the runner left processes behind"
    report = json.loads(out.read_text())
    assert report["meta"]["repeat"] == 2
    assert [s["name"] for s in report["scenarios"]] == ["pingpong-1x64", "udp-64"]
    assert len(report["runs"]) == 2 * 2 * 2
    assert not [r for r in report["runs"] if "error" in r]
    for scenario in report["scenarios"]:
        for server in ("ngi", "c"):
            figures = scenario["servers"][server]
            assert figures["runs"] == 2
            assert figures["value"] > 0
            assert figures["cpu_per_op_us"] > 0
            assert 0 < figures["p50_us"] <= figures["p99_us"]
        ratio = scenario["ratios"]["ngi"]["c"]
        assert ratio["value"] > 0 and ratio["cpu_per_op_us"] > 0
    assert "pingpong-1x64" in captured.out and "vs C" in captured.out


def test_unknown_server_is_refused(capsys):
    run = load_runner()
    with pytest.raises(SystemExit):
        run.main(["--servers", "nginx"])
    assert "unknown server" in capsys.readouterr().err
