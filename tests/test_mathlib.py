"""Accuracy, special values and vectorisation of `fuseflow.codegen.mathlib`.

Every function is called the way generated kernels call it: inlined into an njit loop. Errors are
in ulps of the exact result, measured against a reference of higher precision: float64 numpy for
float32, x87 long double numpy (mpmath for erf, or where long double is plain double) for float64.
"""

from __future__ import annotations

import math
import os
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit

from fuseflow.bench.mathlib_bench import NUMPY_FUNCTIONS
from fuseflow.codegen import mathlib

F32, F64 = np.float32, np.float64
NAMES = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "erf", "sin", "cos")
TOLERANCE = {F32: 2.0, F64: 4.0}
EXTENDED = np.finfo(np.longdouble).nmant >= 63
CASES = [pytest.param(name, dtype, id=f"{name}-{dtype.__name__}") for name in NAMES for dtype in (F32, F64)]

_LOOPS: dict = {}


def compiled(name: str, dtype):
    """The njit loop ``out[i] = f(x[i])`` over `name`'s variant for `dtype` (one per process)."""
    if (name, dtype) not in _LOOPS:
        f = mathlib.FUNCTIONS[(name, "f32" if dtype is F32 else "f64")]

        @njit(error_model="numpy")
        def apply(out, x):
            for i in range(x.size):
                out[i] = f(x[i])

        _LOOPS[(name, dtype)] = apply
    return _LOOPS[(name, dtype)]


def evaluate(name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    compiled(name, x.dtype.type)(out, x)
    return out


# ----------------------------------------------------------------------------- references


_NUMPY = {**NUMPY_FUNCTIONS, "erf": np.vectorize(math.erf, otypes=[F64])}


def _mpmath(name: str, x: np.ndarray, out: np.ndarray) -> None:
    """Overwrite `out` at the finite nonzero `x` whose result is finite with mpmath's value."""
    mp = pytest.importorskip("mpmath")
    fn = {
        "exp": mp.exp,
        "expm1": mp.expm1,
        "log": mp.log,
        "log1p": mp.log1p,
        "tanh": mp.tanh,
        "sigmoid": lambda v: 1 / (1 + mp.exp(-v)),
        "erf": mp.erf,
        "sin": mp.sin,
        "cos": mp.cos,
    }[name]
    todo = np.flatnonzero(np.isfinite(x) & (x != 0) & np.isfinite(out) & (out != 0))
    with mp.workdps(40):
        for i in todo:
            out[i] = out.dtype.type(mp.nstr(fn(mp.mpf(float(x[i]))), 30))


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """name(x) well beyond the precision of x: float64 for float32 x, long double for float64 x."""
    with np.errstate(all="ignore"):
        if x.dtype == F32:
            return _NUMPY[name](x.astype(F64))
        ref = _NUMPY[name](x.astype(np.longdouble) if EXTENDED and name != "erf" else x).astype(np.longdouble)
    if name == "erf":  # mpmath only where erf is neither linear (tiny x) nor rounded to +-1
        tiny = np.abs(x) < 2.0**-30
        ref[tiny] = x[tiny].astype(np.longdouble) * (2 / np.sqrt(np.longdouble("3.14159265358979323846264338")))
        middle = np.flatnonzero(~tiny & (np.abs(x) < 6.5))
        part = ref[middle]
        _mpmath(name, x[middle], part)
        ref[middle] = part
    elif not EXTENDED:
        _mpmath(name, x, ref)
    return ref


def ulp_error(got: np.ndarray, ref: np.ndarray, dtype) -> np.ndarray:
    """|got - ref| in ulps of `dtype` at ref; 0 where both are the same nan/inf, inf where not."""
    info = np.finfo(dtype)
    with np.errstate(all="ignore"):
        rounded = ref.astype(dtype)
        _, e = np.frexp(np.abs(ref))
        ulp = np.ldexp(np.ones_like(ref), np.maximum(e - 1, info.minexp) - info.nmant)
        err = np.abs(got.astype(ref.dtype) - ref) / ulp
    special = ~np.isfinite(rounded) | ~np.isfinite(got)
    same = (np.isnan(rounded) & np.isnan(got)) | (rounded == got)
    err[special] = np.where(same[special], 0.0, np.inf)
    zeros = (rounded == 0) & (got == 0) & (np.signbit(rounded) != np.signbit(got))
    err[zeros] = np.inf  # the sign of an exact zero must match
    return err


# ----------------------------------------------------------------------------- inputs


def around(values, dtype, k: int = 16) -> np.ndarray:
    """The 2k + 1 floats of `dtype` nearest each of `values` (walking the bit patterns)."""
    itype = np.int32 if dtype is F32 else np.int64
    bits = np.asarray(values, dtype=dtype).view(itype)[:, None] + np.arange(-k, k + 1, dtype=itype)
    return bits.ravel().view(dtype)


def random_bits(dtype, n: int, seed: int = 0) -> np.ndarray:
    """`n` floats from uniformly random bit patterns: every binade, subnormals, nan and inf."""
    rng = np.random.default_rng(seed)
    if dtype is F32:
        return rng.integers(0, 2**32, n, dtype=np.uint32).view(F32)
    return rng.integers(0, 2**64, n, dtype=np.uint64).view(F64)


def edges(dtype) -> np.ndarray:
    """The inputs where these implementations switch method or the results leave the normal range."""
    info = np.finfo(dtype)
    p = info.nmant + 1
    ln2 = math.log(2)
    common = [0.0, 0.25, 0.5, 1.0, 2.0, info.smallest_subnormal, info.smallest_normal, info.max]
    exp = [np.log(info.max), np.log(info.smallest_normal), np.log(info.smallest_subnormal), ln2 / 2, p * ln2]
    log = [math.sqrt(2), math.sqrt(0.5), math.sqrt(2) - 1, math.sqrt(0.5) - 1, -1.0, 2.0 ** (p + 1)]
    pieces = [0.55, p * ln2 / 2, 1.0, 2.0, 3.5, 4.0, 6.0]  # tanh, erf
    trig = [math.pi / 4, math.pi / 2, math.pi, 1e5, 1e9, 2.0**60, 2.0**100]
    points = np.array([abs(v) for v in common + exp + log + pieces + trig if abs(v) <= info.max], dtype)
    k_pio2 = (np.arange(1, 2000) * (np.pi / 2)).astype(dtype)
    dense = np.concatenate([np.linspace(-v, v, 20001) for v in (1.0, 10.0, 120.0, 750.0)]).astype(dtype)
    with np.errstate(over="ignore"):
        spread = np.geomspace(info.smallest_subnormal, info.max, 20000, dtype=dtype)
    near = around(np.concatenate([points, -points]), dtype)
    return np.concatenate([near, around(k_pio2, dtype, 2), dense, spread, -spread])


def sample(name: str, dtype) -> np.ndarray:
    """Random bit patterns, the edges and inf/nan; thinned to ~20k points where the reference is
    mpmath for every point (float64 without an extended long double)."""
    x = np.concatenate([random_bits(dtype, 200000), edges(dtype), np.array([np.inf, -np.inf, np.nan], dtype)])
    if dtype is F64 and not EXTENDED:
        x = x[:: x.size // 20000]
    return x


# ----------------------------------------------------------------------------- tests


def max_error(name: str, x: np.ndarray) -> tuple[float, float]:
    """(largest ulp error, an input where it occurs) of `name` over `x`."""
    err = ulp_error(evaluate(name, x), reference(name, x), x.dtype.type)
    i = int(np.argmax(err))
    return float(err[i]), x[i]


@pytest.mark.parametrize("name, dtype", CASES)
def test_within_tolerance_over_whole_range(name, dtype):
    err, where = max_error(name, sample(name, dtype))
    assert err <= TOLERANCE[dtype], f"{name}({where!r}) is {err:.3f} ulp off"


_EXHAUSTIVE = [n for n in os.environ.get("FUSEFLOW_EXHAUSTIVE", "").split(",") if n]


@pytest.mark.skipif(not _EXHAUSTIVE, reason="minutes per function: FUSEFLOW_EXHAUSTIVE=tanh,exp,... selects them")
@pytest.mark.parametrize("name", [n for n in NAMES if n != "erf"])  # erf's float64 reference is a Python loop
def test_float32_within_tolerance_on_every_input(name):
    if name not in _EXHAUSTIVE:
        pytest.skip(f"{name} not in FUSEFLOW_EXHAUSTIVE")
    worst, where = 0.0, None
    for start in range(0, 2**32, 2**24):
        x = np.arange(start, start + 2**24, dtype=np.uint32).view(F32)
        err, at = max_error(name, x)
        if err > worst:
            worst, where = err, at
    assert worst <= TOLERANCE[F32], f"{name}({where!r}) is {worst:.3f} ulp off"


def _denominators(frac, limit: int, mp) -> list[int]:
    """Denominators below `limit` of the convergents and semiconvergents of `frac` in (0, 1)."""
    out, k2, k1, x = [], 1, 0, frac
    while True:
        a = int(mp.floor(x))
        if k1:  # the semiconvergents k2 + j k1, j < a: the last few below the limit
            top = min(a, (limit - 1 - k2) // k1)
            out += [k2 + j * k1 for j in range(max(1, top - 3), top + 1)]
        k = a * k1 + k2
        if k >= limit or x == a:
            return out
        out.append(k)
        k2, k1, x = k1, k, 1 / (x - a)


def hard_reductions(dtype, binades) -> np.ndarray:
    """Floats x = M 2**E of `dtype` that lie closest to multiples of pi/2, two per binade E: the
    significands M for which M 2**E 2/pi is nearest an integer, among the (semi)convergent
    denominators of 2**E 2/pi mod 1 and their smallest multiples in [2**(p-1), 2**p)."""
    mp = pytest.importorskip("mpmath")
    p = np.finfo(dtype).nmant + 1
    lo, hi = 2 ** (p - 1), 2**p
    found = []
    for e in binades:
        with mp.workprec(max(e, 0) + 3 * p + 100):
            beta = mp.ldexp(2 / mp.pi, e)
            frac = beta - mp.floor(beta)
            ms = {q * m for q in _denominators(frac, hi, mp) for m in range(-(-lo // q), -(-lo // q) + 3)}
            ms = sorted((m for m in ms if lo <= m < hi), key=lambda m: abs(m * frac - mp.nint(m * frac)))
        found += [math.ldexp(m, e) for m in ms[:2]]
    return np.array(found, dtype=dtype)


@pytest.mark.parametrize("dtype, binades", [(F32, range(-23, 105)), (F64, range(-52, 972, 7))])
def test_sin_cos_near_multiples_of_pi_over_2(dtype, binades):
    x = hard_reductions(dtype, binades)
    x = np.concatenate([x, -x])
    for name in ("sin", "cos"):
        mp = pytest.importorskip("mpmath")
        ref = np.empty(x.size, np.longdouble if EXTENDED else F64)
        fn = getattr(mp, name)
        with mp.workprec(1200):
            for i, v in enumerate(x.tolist()):
                ref[i] = ref.dtype.type(mp.nstr(fn(mp.mpf(v)), 30))
        err = ulp_error(evaluate(name, x), ref, dtype)
        i = int(np.argmax(err))
        assert err[i] <= TOLERANCE[dtype], f"{name}({x[i]!r}) is {err[i]:.3f} ulp off"


SPECIAL = [
    ("exp", -np.inf, 0.0),
    ("exp", np.inf, np.inf),
    ("exp", -0.0, 1.0),
    ("exp", 1e6, np.inf),
    ("exp", -1e6, 0.0),
    ("expm1", -np.inf, -1.0),
    ("expm1", np.inf, np.inf),
    ("expm1", -0.0, -0.0),
    ("expm1", 0.0, 0.0),
    ("log", 0.0, -np.inf),
    ("log", -0.0, -np.inf),
    ("log", -1.0, np.nan),
    ("log", np.inf, np.inf),
    ("log", -np.inf, np.nan),
    ("log", 1.0, 0.0),
    ("log1p", -1.0, -np.inf),
    ("log1p", -2.0, np.nan),
    ("log1p", -0.0, -0.0),
    ("log1p", np.inf, np.inf),
    ("log1p", -np.inf, np.nan),
    ("log1p", 0.0, 0.0),
    ("tanh", np.inf, 1.0),
    ("tanh", -np.inf, -1.0),
    ("tanh", -0.0, -0.0),
    ("tanh", 1e6, 1.0),
    ("sigmoid", np.inf, 1.0),
    ("sigmoid", -np.inf, 0.0),
    ("sigmoid", -0.0, 0.5),
    ("sigmoid", -1e6, 0.0),
    ("erf", np.inf, 1.0),
    ("erf", -np.inf, -1.0),
    ("erf", -0.0, -0.0),
    ("erf", 0.0, 0.0),
    ("sin", np.inf, np.nan),
    ("sin", -np.inf, np.nan),
    ("sin", -0.0, -0.0),
    ("sin", 0.0, 0.0),
    ("cos", np.inf, np.nan),
    ("cos", -np.inf, np.nan),
    ("cos", -0.0, 1.0),
] + [(name, np.nan, np.nan) for name in NAMES]


@pytest.mark.parametrize("dtype", [F32, F64])
def test_special_values_exact(dtype):
    for name, x, want in SPECIAL:
        got = evaluate(name, np.array([x], dtype))[0]
        assert got.dtype == dtype
        same = np.isnan(want) if np.isnan(got) else (got == want and np.signbit(got) == np.signbit(want))
        assert same, f"{name}({x!r}) = {got!r}, want {want!r}"


def test_table_has_every_function_for_both_dtypes():
    assert set(mathlib.FUNCTIONS) == {(name, s) for name in NAMES for s in ("f32", "f64")}


# ----------------------------------------------------------------------------- vectorisation

_HOST_AVX2 = "+avx2" in llvm.get_host_cpu_features().flatten()
_LIBM = re.compile(r"(llvm\.)?(exp|expm1|log|log1p|tanh|erf|sin|cos|pow)(f|\.\w+)?")


def inspect_loop(apply, dtype) -> tuple[int, set]:
    """(widest vector of `dtype` elements, libm functions called) in the LLVM IR of `apply`."""
    ir = apply.inspect_llvm(apply.signatures[0])
    elem = "float" if dtype is F32 else "double"
    widths = [int(n) for n in re.findall(rf"<(\d+) x {elem}>", ir)]
    calls = set(re.findall(r"call [^@]*@([\w.]+)\(", ir))
    return max(widths, default=1), {c for c in calls if _LIBM.fullmatch(c)}


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "erf"])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_loop_vectorises_without_libm(name, dtype):
    evaluate(name, np.ones(4, dtype))
    apply = compiled(name, dtype)
    width, libm = inspect_loop(apply, dtype)
    want = (8 if dtype is F32 else 4) if _HOST_AVX2 else (4 if dtype is F32 else 2)
    assert width >= want and not libm, f"{name}: widest vector {width}, libm calls {libm}"
    if dtype is F32:  # float32 arithmetic stays float32
        ir = apply.inspect_llvm(apply.signatures[0])
        assert "fpext" not in ir and " double" not in ir


def test_loop_inspection_sees_libm_calls():
    @njit(error_model="numpy")
    def apply(out, x):
        for i in range(x.size):
            out[i] = math.exp(x[i])

    apply(np.empty(4, F32), np.ones(4, F32))
    _, libm = inspect_loop(apply, F32)
    assert libm, "a loop over math.exp must show its libm call"
