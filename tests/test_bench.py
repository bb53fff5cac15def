"""`fuseflow bench`: a --quick run reports every workload (numbers or a reason), ratios agree with
the times, the chart is written when matplotlib imports, and a missing peer is reported, not raised."""

import contextlib
import io
import json
import sys

import pytest

from fuseflow.bench.common import Case
from fuseflow.bench.harness import Progress, run_case
from fuseflow.bench.workloads import WORKLOADS
from fuseflow.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `fuseflow bench --quick` for the tests that read its outputs (about 20 s on 2 cores)."""
    out = tmp_path_factory.mktemp("bench")
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        assert main(["bench", "--quick", "--json", str(out / "r.json"), "--png", str(out / "r.png")]) == 0
    with open(out / "r.json") as f:
        return json.load(f), out, table.getvalue()


def test_every_workload_has_numbers_or_a_reason(quick_run):
    report, _, _ = quick_run
    assert {r["workload"] for r in report["rows"]} == {w.name for w in WORKLOADS}
    for row in report["rows"]:
        if row["status"] == "skipped":
            assert row["reason"] and row["reason"] == row["skipped"]["fuseflow"]
        else:
            ours = row["times"]["fuseflow"]
            assert 0 < ours["min"] <= ours["median"], row


def test_table_has_a_line_per_case(quick_run):
    report, _, table = quick_run
    lines = table.splitlines()
    for row in report["rows"]:
        assert any(line.split()[:1] == [row["workload"]] and row["case"] in line for line in lines), row


def test_ratios_are_peer_time_over_fuseflow_time(quick_run):
    report, _, _ = quick_run
    for row in (r for r in report["rows"] if r["status"] == "ok"):
        ours = row["times"]["fuseflow"]["median"]
        assert set(row["ratio"]) == set(row["times"]) - {"fuseflow"}
        for peer, ratio in row["ratio"].items():
            assert ratio == pytest.approx(row["times"][peer]["median"] / ours)


def test_memory_bound_rows_report_bandwidth(quick_run):
    report, _, _ = quick_run
    rows = {r["workload"]: r for r in report["rows"]}
    for name in ("gelu", "mix", "softmax"):
        row = rows[name]
        assert row["GBps"] == pytest.approx(row["bytes"] / row["times"]["fuseflow"]["median"] / 1e9)
        assert row["bandwidth_share"] == pytest.approx(row["GBps"] / report["copy_bandwidth_GBps"])


def test_targets_are_judged_on_fuseflows_median(quick_run):
    report, _, table = quick_run
    judged = [r for r in report["rows"] if r["target_s"] is not None]
    assert {r["workload"] for r in judged} >= {"dispatch_jit", "dispatch_session"}
    for row in (r for r in judged if r["status"] == "ok"):
        assert row["target_met"] == (row["times"]["fuseflow"]["median"] <= row["target_s"])
    assert "targets:" in table


def test_chart_is_written_when_matplotlib_imports(quick_run):
    pytest.importorskip("matplotlib")
    _, out, _ = quick_run
    with open(out / "r.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _without(monkeypatch, missing: set) -> None:
    """Makes every bench module's `optional` answer None for the modules in `missing`."""
    from fuseflow.bench import common

    real = common.optional
    for module in [m for name, m in sys.modules.items() if name.startswith("fuseflow.bench")]:
        if getattr(module, "optional", None) is real:
            monkeypatch.setattr(module, "optional", lambda name: None if name in missing else real(name))


def test_missing_peers_are_reported_not_raised(tmp_path, monkeypatch, capsys):
    _without(monkeypatch, {"jax", "numexpr", "numba", "matplotlib"})
    path = tmp_path / "r.json"
    assert main(["bench", "--quick", "--only", "gelu,mlp_step", "--repeats", "1", "--json", str(path)]) == 0
    rows = {r["workload"]: r for r in json.loads(path.read_text())["rows"]}
    assert rows["gelu"]["skipped"] == {p: f"{p} not installed" for p in ("numexpr", "jax", "numba")}
    assert rows["mlp_step"]["skipped"] == {"jax": "jax not installed"}
    assert set(rows["gelu"]["ratio"]) == {"numpy"}
    out = capsys.readouterr().out
    assert "gelu numexpr: numexpr not installed" in out and "matplotlib not installed" in out
    assert not (tmp_path / "r.png").exists()


def test_a_failing_peer_is_reported_not_raised():
    def broken():
        raise RuntimeError("no device")

    case = Case("tiny", {"fuseflow": lambda: None, "jax": broken})
    row = run_case("tiny", case, 1, 1e9, Progress(io.StringIO()), "[1/1] tiny")
    assert row["status"] == "ok" and row["skipped"] == {"jax": "failed: RuntimeError: no device"}


def test_unknown_workload_is_a_usage_error(capsys):
    assert main(["bench", "--only", "gelu,nope"]) == 2
    assert "unknown workload nope" in capsys.readouterr().err


def test_dispatch_jit_runs_once_fuseflow_has_jit(tmp_path, monkeypatch):
    import fuseflow

    monkeypatch.setattr(fuseflow, "jit", lambda f: f, raising=False)  # stands in for the real decorator
    path = tmp_path / "r.json"
    assert main(["bench", "--quick", "--only", "dispatch_jit", "--repeats", "1", "--json", str(path)]) == 0
    (row,) = json.loads(path.read_text())["rows"]
    assert row["status"] == "ok" and row["times"]["fuseflow"]["median"] > 0
