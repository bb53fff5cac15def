"""Shared benchmark helpers: timing (median and min after warm-up), the machine's copy bandwidth,
optional peers, and the `Case` record every workload gives the harness."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A full run's warm-up lasts at least this long. Right after the GELU case, the mix case's first timed calls
# ran at 23 and 16 ms and the rest at 11.7 (five fresh 64 MB inputs: the kernel's page work in the
# background, we think); two calls of warm-up (24 ms) did not cover that.
MIN_WARMUP_SECONDS = 0.25


def measure(fn, repeats: int = 7, warmup: int = 2, warmup_seconds: float = 0.0) -> dict:
    """Median and min wall time of `fn()` in seconds, after `warmup` calls that take at least
    `warmup_seconds` (the harness's full runs: `MIN_WARMUP_SECONDS`)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    while time.perf_counter() - start < warmup_seconds:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times)}


def copy_bandwidth(nbytes: int = 1 << 28, repeats: int = 7) -> float:
    """Bytes per second of ``np.copyto`` between two large arrays (read + write counted)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    t = measure(lambda: np.copyto(dst, src), repeats)["median"]
    return 2 * nbytes / t


def optional(module: str):
    """The module if it can be imported, else None (peers are optional)."""
    try:
        return __import__(module)
    except ImportError:
        return None


@dataclass(frozen=True)
class Skip:
    """Stands in for a runner that cannot run here, saying why ("jax not installed")."""

    reason: str


def repeated(fn: Callable, n: int, *args) -> Callable[[], None]:
    """A runner calling ``fn(*args)`` `n` times: per-call times of microsecond work need a loop
    around them to rise above the timer's resolution and overhead (every runner gets the same loop)."""

    def run() -> None:
        for _ in range(n):
            fn(*args)

    return run


@dataclass
class Case:
    """One row of results: one computation run by fuseflow, by numpy and by the peers.

    `runners` maps "fuseflow", "numpy" and peer names to zero-argument callables, or to a `Skip`
    when that runner cannot run here. Times are per call: a runner's time is divided by `calls`.
    `nbytes` (bytes read + written per call) marks memory-bound work, reported as GB/s and as a
    share of the copy bandwidth. A `self_timed` runner returns its own seconds (a subprocess's
    compile time, a first run) instead of being timed around; it is not warmed up, and `repeats`,
    when set, fixes how often it runs (a first run happens once). `target` is the goal the issue
    sets for fuseflow's median, in seconds per call; the report says whether it is met.
    """

    label: str
    runners: dict
    nbytes: int | None = None
    calls: int = 1
    self_timed: bool = False
    repeats: int | None = None
    target: float | None = None
