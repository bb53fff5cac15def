"""Compile time: a program's graph build and first run in a fresh process, with fuseflow's kernel
cache (``FUSEFLOW_CACHE_DIR``) empty (compile_cold) or filled by an earlier process (compile_warm).

The harness starts a child process (``python -c _BOOT PROGRAM [--quick]``) once per repeat; the
child times the build and first run itself, so interpreter start and imports are left out (the
import is reported beside them), and prints one JSON line on stdout with its `KERNEL_STATS`
(``loaded`` counts kernels that came from the disk cache).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from fuseflow.bench.common import Case

PROGRAMS = ("gelu", "mlp_step")


def _first_run(program: str, quick: bool) -> None:
    from fuseflow.bench import fusion, training

    if program == "gelu":
        x = np.ones(1 << 16, np.float32)
        fusion.session_runner(fusion.gelu, [x])()
    else:
        training.mlp_fuseflow(*training.mlp_data(quick), 0.1)()


def _child(argv, import_s: float) -> None:
    parser = argparse.ArgumentParser(description="time one program's graph build and first run")
    parser.add_argument("program", choices=PROGRAMS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from fuseflow.codegen.source import KERNEL_STATS

    start = time.perf_counter()
    _first_run(args.program, args.quick)
    done = time.perf_counter()
    print(json.dumps({"program": args.program, "import_s": import_s, "first_run_s": done - start,
                      "kernels": KERNEL_STATS}))


# The child is started with ``-c`` rather than ``-m fuseflow.bench.compile_time``: ``-m`` imports the
# fuseflow package before any of our code runs, so the import could not be timed.
_BOOT = ("import sys, time; start = time.perf_counter(); import fuseflow; "
         "imported = time.perf_counter() - start; "
         "from fuseflow.bench.compile_time import _child; _child(sys.argv[1:], imported)")


def probe(program: str, cache_dir: str, quick: bool) -> dict:
    """Runs the child for `program` with `cache_dir` as its kernel cache; its JSON line."""
    env = dict(os.environ, FUSEFLOW_CACHE_DIR=cache_dir)
    command = [sys.executable, "-c", _BOOT, program] + (["--quick"] if quick else [])
    out = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"compile probe {program} failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


# A kernel cache a cold run filled, per (program, quick), for compile_warm to reuse instead of
# filling its own with one more process. Replacing an entry drops the previous directory (its
# TemporaryDirectory's finalizer removes it).
_FILLED: dict = {}


def _cold(program: str, quick: bool):
    def run() -> float:
        cache = tempfile.TemporaryDirectory(prefix="fuseflow-bench-")
        seconds = probe(program, cache.name, quick)["first_run_s"]
        _FILLED[program, quick] = cache
        return seconds

    return run


def _warm(program: str, quick: bool):
    def run() -> float:
        cache = _FILLED.get((program, quick))
        if cache is None:  # compile_warm without compile_cold before it: fill one, untimed
            cache = _FILLED[program, quick] = tempfile.TemporaryDirectory(prefix="fuseflow-bench-")
            probe(program, cache.name, quick)
        return probe(program, cache.name, quick)["first_run_s"]

    return run


def _cases(make, quick: bool, targets: dict) -> list[Case]:
    # Each repeat is a new process (a second or more): a few repeats are enough for these. The
    # targets are for the full-size MLP; --quick compiles a smaller one, so it has none.
    return [Case(program, {"fuseflow": make(program, quick)}, self_timed=True, repeats=1 if quick else 3,
                 target=None if quick else targets.get(program))
            for program in PROGRAMS]


def cold_cases(quick: bool) -> list[Case]:
    """Build + first run of each program in a fresh process with an empty kernel cache."""
    return _cases(_cold, quick, {"mlp_step": 1.5})


def warm_cases(quick: bool) -> list[Case]:
    """Build + first run of each program in a second process reusing the first one's cache."""
    return _cases(_warm, quick, {"mlp_step": 0.1})


if __name__ == "__main__":
    sys.exit("run by the harness: fuseflow bench --only compile_cold,compile_warm")
