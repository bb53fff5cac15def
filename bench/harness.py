"""The benchmark harness: ``fuseflow bench`` (also ``python -m fuseflow.bench``).

Measures the machine's copy bandwidth, then every registered workload (`fuseflow.bench.workloads`)
with fuseflow, numpy and the installed peers: median and min time per call over repeats after a
warm-up of two calls and at least `MIN_WARMUP_SECONDS` (``--quick``: the two calls), the ratio of each peer's median to fuseflow's, and for memory-bound work GB/s and the
share of the copy bandwidth. Prints a progress line on stderr and a table on stdout, writes the
results as JSON and, when matplotlib imports, a PNG bar chart of the speed-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

from fuseflow.bench.common import MIN_WARMUP_SECONDS, Case, Skip, copy_bandwidth, measure
from fuseflow.bench.report import format_table, format_time, write_png

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The harness's flags, on its own parser or on the ``fuseflow bench`` subcommand's."""
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 3 repeats: a smoke test in seconds")
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run only these workloads (default: all)")
    parser.add_argument("--repeats", type=_positive, metavar="N",
                        help="timed repeats after warm-up (default 7, quick 3; compile: 3 processes, quick 1)")
    parser.add_argument("--json", metavar="PATH", default=DEFAULT_JSON, help="results file (default bench/results.json)")
    parser.add_argument("--png", metavar="PATH", help="bar chart, when matplotlib is installed (default: beside the JSON)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a count of at least 1, got {text}")
    return value


class UnknownWorkload(ValueError):
    """`--only` named a workload the registry does not have."""


class Progress:
    """One progress line on stderr: rewritten in place on a terminal; elsewhere (CI logs) each
    finished case gets a line of its own."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def show(self, text: str, final: bool = False) -> None:
        """Shows `text`; a `final` line stays."""
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()


def _time(runner, case: Case, repeats: int, warmup_seconds: float) -> dict:
    """Median and min seconds per call of one runner."""
    if case.self_timed:
        seconds = [runner() for _ in range(case.repeats or repeats)]
        timed = {"median": statistics.median(seconds), "min": min(seconds)}
    else:
        timed = measure(runner, case.repeats or repeats, warmup_seconds=warmup_seconds)
    return {k: v / case.calls for k, v in timed.items()}


def _row(workload: str, case: Case, times: dict, skipped: dict, bandwidth: float) -> dict:
    """The result record of one case; ratios are peer median / fuseflow median."""
    row = {"workload": workload, "case": case.label, "calls": case.calls, "bytes": case.nbytes,
           "times": times, "skipped": skipped, "target_s": case.target}
    ours = times.get("fuseflow")
    if ours is None:
        return {**row, "status": "skipped", "reason": skipped["fuseflow"], "ratio": {}}
    row.update(status="ok", ratio={p: t["median"] / ours["median"] for p, t in times.items() if p != "fuseflow"})
    if case.target is not None:
        row["target_met"] = ours["median"] <= case.target
    if case.nbytes:
        row.update(GBps=case.nbytes / ours["median"] / 1e9, bandwidth_share=case.nbytes / ours["median"] / bandwidth)
    return row


def _summary(prefix: str, row: dict) -> str:
    parts = [f"{name} {format_time(t['median'])}" + (f" ({row['ratio'][name]:.2f}x)" if name in row["ratio"] else "")
             for name, t in row["times"].items()]
    parts += [f"{name} skipped" for name in row["skipped"]]
    return f"{prefix}: " + ", ".join(parts)


def run_case(workload: str, case: Case, repeats: int, bandwidth: float, progress: Progress, prefix: str,
             warmup_seconds: float = 0.0) -> dict:
    """Times every runner of `case`. A peer that raises is reported as failed, not raised: one
    broken peer must not lose the rest of a long run; fuseflow's own errors do propagate."""
    times, skipped = {}, {}
    for name, runner in case.runners.items():
        if isinstance(runner, Skip):
            skipped[name] = runner.reason
            continue
        progress.show(f"{prefix}: {name} ...")
        try:
            times[name] = _time(runner, case, repeats, warmup_seconds)
        except Exception as e:
            if name == "fuseflow":
                raise
            skipped[name] = f"failed: {type(e).__name__}: {e}"
    row = _row(workload, case, times, skipped, bandwidth)
    progress.show(_summary(prefix, row), final=True)
    return row


def select(only: str | None) -> list:
    """The registered workloads named in `only` (comma-separated), in registry order."""
    from fuseflow.bench.workloads import BY_NAME, WORKLOADS

    if not only:
        return list(WORKLOADS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise UnknownWorkload(f"unknown workload {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return [w for w in WORKLOADS if w.name in names]


def _machine() -> dict:
    import numba
    import numpy

    from fuseflow.bench.peers import peer_versions

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "numpy": numpy.__version__, "numba": numba.__version__, "peers": peer_versions()}


def run(args: argparse.Namespace) -> dict:
    """Runs the selected workloads and writes the report; returns it."""
    selected = select(args.only)
    repeats = args.repeats or (3 if args.quick else 7)
    warmup = 0.0 if args.quick else MIN_WARMUP_SECONDS
    progress = Progress()
    progress.show("measuring copy bandwidth ...")
    bandwidth = copy_bandwidth(1 << (24 if args.quick else 28))
    rows = []
    for i, workload in enumerate(selected, 1):
        prefix = f"[{i}/{len(selected)}] {workload.name}"
        progress.show(f"{prefix}: building ...")
        for case in workload.cases(args.quick):
            rows.append(run_case(workload.name, case, repeats, bandwidth, progress, f"{prefix} {case.label}", warmup))
    report = {"quick": args.quick, "repeats": repeats, "machine": _machine(), "copy_bandwidth_GBps": bandwidth / 1e9,
              "workloads": {w.name: w.summary for w in selected}, "rows": rows}
    print(format_table(report))
    _write_json(report, args.json)
    print(f"results: {args.json}")
    print(write_png(report, args.png or os.path.splitext(args.json)[0] + ".png"))
    return report


def _write_json(report: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


def main(argv=None) -> dict:
    """``python -m fuseflow.bench`` and the old per-topic entry points come here."""
    parser = argparse.ArgumentParser(prog="fuseflow bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UnknownWorkload as e:
        parser.error(str(e))
