"""Shared benchmark helpers: timing (median and min after warm-up) and the machine's copy bandwidth."""

from __future__ import annotations

import statistics
import time

import numpy as np


def measure(fn, repeats: int = 7, warmup: int = 2) -> dict:
    """Median and min wall time of `fn()` in seconds, after `warmup` calls."""
    for _ in range(warmup):
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
