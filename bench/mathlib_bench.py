"""Benchmark: mathlib's vectorised functions against the libm calls numba makes, and numpy.

    python -m fuseflow.bench.mathlib_bench [--log2n 24] [--json FILE]

For every function and dtype, on 2^log2n elements of a typical input range: an njit loop calling
`fuseflow.codegen.mathlib` ("mathlib"), the same loop calling ``np.<fn>`` (numba lowers it to a
scalar libm call: "numba-libm"), and numpy's ufunc. Then GELU, ``0.5 x (1 + tanh(0.79788456 (x +
0.044715 x^3)))`` on float32, with mathlib's tanh and with np.tanh. Times are the best of 9
after warm-up (the least disturbed by other load); GB/s counts the bytes read and written, next to
the machine's copy bandwidth.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
from numba import njit

from fuseflow.bench.common import copy_bandwidth, measure
from fuseflow.codegen import mathlib

RANGES = {
    "exp": (-10, 10),
    "expm1": (-5, 5),
    "log": (1e-3, 100),
    "log1p": (-0.9, 100),
    "tanh": (-5, 5),
    "sigmoid": (-10, 10),
    "erf": (-4, 4),
    "sin": (-100, 100),
    "cos": (-100, 100),
}


def _loop(f):
    @njit(error_model="numpy")
    def apply(out, x):
        for i in range(x.size):
            out[i] = f(x[i])

    return apply


# numpy's version of each function (None: numpy has no erf); the mathlib tests use it as their reference too.
NUMPY_FUNCTIONS = {
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": None,
    "sin": np.sin,
    "cos": np.cos,
}


def _libm(name: str, F):
    """A scalar njit function computing `name` the way numba does by default (libm calls)."""
    one = F(1.0)
    fn = math.erf if name == "erf" else np.exp if name == "sigmoid" else NUMPY_FUNCTIONS[name]

    if name == "sigmoid":
        return njit(lambda v: one / (one + fn(-v)))
    return njit(lambda v: fn(v))


def _gelu(tanh, F):
    half, one, c, k = F(0.5), F(1.0), F(0.7978845608), F(0.044715)

    @njit(error_model="numpy")
    def gelu(out, x):
        for i in range(x.size):
            v = x[i]
            out[i] = half * v * (one + tanh(c * (v + k * v * v * v)))

    return gelu


def run(log2n: int = 24) -> dict:
    n = 1 << log2n
    rng = np.random.default_rng(0)
    report = {"n": n, "copy_GBps": copy_bandwidth() / 1e9, "functions": {}}
    for (name, suffix), f in mathlib.FUNCTIONS.items():
        dtype = np.float32 if suffix == "f32" else np.float64
        x = rng.uniform(*RANGES[name], n).astype(dtype)
        out = np.empty_like(x)
        row = {}
        variants = {"mathlib": _loop(f), "numba-libm": _loop(_libm(name, dtype))}
        for label, loop in variants.items():
            row[label] = measure(lambda loop=loop, out=out, x=x: loop(out, x), repeats=9)["min"]
        if NUMPY_FUNCTIONS[name] is not None:
            row["numpy"] = measure(lambda ufunc=NUMPY_FUNCTIONS[name], x=x: ufunc(x), repeats=9)["min"]
        row["mathlib_GBps"] = 2 * x.nbytes / row["mathlib"] / 1e9
        report["functions"][f"{name}_{suffix}"] = row
    x = rng.standard_normal(n).astype(np.float32)
    out = np.empty_like(x)
    gelu = {"mathlib": _gelu(mathlib.tanh_f32, np.float32), "numba-libm": _gelu(_libm("tanh", np.float32), np.float32)}
    report["gelu_f32"] = {label: measure(lambda g=g: g(out, x), repeats=9)["min"] for label, g in gelu.items()}
    c, k = np.float32(0.7978845608), np.float32(0.044715)
    report["gelu_f32"]["numpy"] = measure(lambda: 0.5 * x * (1 + np.tanh(c * (x + k * x**3))), repeats=3)["min"]
    report["gelu_f32"]["mathlib_GBps"] = 2 * x.nbytes / report["gelu_f32"]["mathlib"] / 1e9
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=24)
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args()
    report = run(args.log2n)
    print(f"n = 2^{args.log2n}, copy bandwidth {report['copy_GBps']:.1f} GB/s; times in ms (best of 9)")
    print(f"{'function':<12}{'mathlib':>9}{'numba-libm':>12}{'numpy':>9}{'speedup':>9}{'GB/s':>7}")
    rows = dict(report["functions"], gelu_f32=report["gelu_f32"])
    for key, row in rows.items():
        numpy_ms = f"{row['numpy'] * 1e3:9.1f}" if "numpy" in row else f"{'-':>9}"
        print(
            f"{key:<12}{row['mathlib'] * 1e3:9.1f}{row['numba-libm'] * 1e3:12.1f}{numpy_ms}"
            f"{row['numba-libm'] / row['mathlib']:8.1f}x{row['mathlib_GBps']:7.1f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
