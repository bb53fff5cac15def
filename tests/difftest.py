"""Differential-test harness: `Session.run` (compiled kernels) against the reference interpreter.

`check(build, arrays)` builds ``build(*placeholders)`` in a fresh graph, runs it
through a `Session`, lowers the same fetches again with `lower` and runs the
module on `fuseflow.ir.interp`, then asserts that both agree: same dtype and shape
(also matching the tensors' static types), integers and bools exactly, floats
within a tolerance (NaN where NaN). The strategies below draw the inputs.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fuseflow as tf
from fuseflow.frontend.lowering import lower
from fuseflow.ir import interp
from fuseflow.ir.types import TensorType, shapes_compatible

BOOL = ("bool",)
INTS = ("int8", "int16", "int32", "int64", "uint8")
FLOATS = ("float16", "float32", "float64")
SIGNED_INTS = ("int8", "int16", "int32", "int64")
NUMERIC = INTS + FLOATS
SIGNED = SIGNED_INTS + FLOATS
ALL = BOOL + NUMERIC

# Relative tolerances for floats: "exact" ops are correctly rounded in both paths; "ulp" ops
# call libm in the kernels and numpy's own implementations in the reference.
EXACT = {"float16": 0.0, "float32": 0.0, "float64": 0.0}
ULP = {"float16": 1e-3, "float32": 4e-6, "float64": 1e-13}
LOOSE = {"float16": 4e-3, "float32": 2e-5, "float64": 1e-11}

SPECIAL = (0.0, -0.0, np.inf, -np.inf, np.nan)

# Broadcasting pairs of shapes (either side may be the bigger one).
BROADCAST_PAIRS = (
    ((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()),
    ((2, 1, 3), (4, 1)), ((5,), (5,)), ((), ()), ((1,), (2, 2)),
)


def eps(dtype) -> float:
    return float(np.finfo(np.dtype(dtype)).eps)


# ----------------------------------------------------------------------------- strategies


def elements(dtype, lo=None, hi=None, special=True, nonzero=False):
    """Scalars of `dtype` in [lo, hi] (clipped to the dtype); floats may add 0, -0, +-inf and NaN."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo = info.min if lo is None else max(int(lo), int(info.min))
        hi = info.max if hi is None else min(int(hi), int(info.max))
        ints = st.integers(lo, hi)
        return ints.filter(lambda v: v != 0) if nonzero else ints
    floats = st.floats(*_float_bounds(dtype, lo, hi), width=dtype.itemsize * 8, allow_subnormal=False)
    if nonzero:
        floats = floats.filter(lambda v: v != 0)
    if not special:
        return floats
    return st.one_of(floats, floats, floats, st.sampled_from(SPECIAL))


def _float_bounds(dtype, lo, hi):
    """[lo, hi] (default [-100, 100]) clipped to `dtype`'s finite range and rounded inward to its values."""
    info = np.finfo(dtype)
    lo = max(-100.0 if lo is None else float(lo), float(info.min))
    hi = min(100.0 if hi is None else float(hi), float(info.max))
    a, b = dtype.type(lo), dtype.type(hi)
    if float(a) < lo:
        a = np.nextafter(a, dtype.type(np.inf))
    if float(b) > hi:
        b = np.nextafter(b, dtype.type(-np.inf))
    return float(a), float(b)


FLOAT_EDGES = (0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.0, -7.0, 1e-3, 100.0, -100.0,
               np.inf, -np.inf, np.nan)


def edge_values(dtype, lo=None, hi=None, nonzero=False, special=True, **_) -> np.ndarray:
    """The values where ops tend to go wrong, as a 1-D array of `dtype`, within `elements`' domain."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.array([False, True])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        cand = [0, 1, -1, 2, -2, 3, -3, 7, -7, 100, info.min, info.min + 1, info.max - 1, info.max]
        lo = info.min if lo is None else max(lo, info.min)
        hi = info.max if hi is None else min(hi, info.max)
    else:
        info = np.finfo(dtype)
        cand = list(FLOAT_EDGES if special else FLOAT_EDGES[:-3]) + [float(info.max), float(info.tiny)]
        lo, hi = -np.inf if lo is None else lo, np.inf if hi is None else hi
    vals = {v for v in cand if np.isnan(v) or lo <= v <= hi}
    if nonzero:
        vals.discard(0)
    return np.array(sorted(vals, key=lambda v: (np.isnan(v), v)), dtype)


def arrays(dtype, shape, **kw):
    """Arrays of `dtype` and `shape` drawn from `elements(dtype, **kw)`."""
    return hnp.arrays(np.dtype(dtype), shape, elements=elements(dtype, **kw), fill=st.nothing())


SHAPES = ((3, 4), (2, 3, 4), (5,), (), (4, 1), (1, 3, 1), (2, 1, 3), (1,), (2, 1, 3, 2), (4, 5))


def shapes(min_rank=0, max_rank=3):
    """Shapes of `SHAPES` with rank in [min_rank, max_rank]; hypothesis starts with the first, a 2-D one."""
    return st.sampled_from([s for s in SHAPES if min_rank <= len(s) <= max_rank])


# ----------------------------------------------------------------------------- running


def placeholder_shape(shape, mode: str):
    """The placeholder's static shape for a fed array: exact, unknown dims, or unknown rank."""
    if mode == "static":
        return shape
    if mode == "dims":
        return (None,) * len(shape)
    return None


def build_graph(build, arrays, mode="static"):
    """A fresh graph with one placeholder per array and the fetch list `build(*placeholders)` gives."""
    graph = tf.Graph()
    with graph.as_default():
        phs = [tf.placeholder(tf.as_dtype(a.dtype), placeholder_shape(a.shape, mode)) for a in arrays]
        out = build(*phs)
    fetches = list(out) if isinstance(out, (list, tuple)) else [out]
    return graph, phs, fetches


def reference(fetches, phs, arrays, counter=0) -> list:
    """The fetches' values from the reference interpreter on a fresh lowering (random counters at `counter`)."""
    feed_types = {ph: TensorType(ph.dtype, a.shape) for ph, a in zip(phs, arrays)}
    lowered = lower(fetches, feed_types, {})
    by_ph = dict(zip(phs, arrays))
    args = [by_ph[t] for t in lowered.feeds] + [np.array(counter, np.int64) for _ in lowered.state_in]
    results = interp.run(lowered.module, *args)
    return [results[i] for i in lowered.fetch_index]


def check(build, arrays, rtol=EXACT, atol=0.0, mode="static") -> list:
    """Asserts compiled == reference for ``build(*placeholders)`` fed `arrays`; returns the reference values.

    `rtol` maps float dtype names to relative tolerances; `atol` is absolute (a number, or a
    dict by dtype name).
    """
    arrays = [np.asarray(a) for a in arrays]
    graph, phs, fetches = build_graph(build, arrays, mode)
    with tf.Session(graph=graph) as sess:
        got = sess.run(fetches, dict(zip(phs, arrays)))
    want = reference(fetches, phs, arrays)
    for t, g, w in zip(fetches, got, want):
        assert_same(g, w, rtol, atol, what=t.name)
        assert np.asarray(g).dtype == t.dtype.np, f"{t.name}: compiled dtype {g.dtype}, tensor says {t.dtype}"
        assert shapes_compatible(t.type.shape, np.shape(g)), \
            f"{t.name}: compiled shape {np.shape(g)}, static shape {t.type.shape}"
    return want


def assert_same(got, want, rtol=EXACT, atol=0.0, what="") -> None:
    """Same dtype and shape; exact for ints and bools, within tolerances for floats (NaNs in place).

    `atol` is a number or a dict by float dtype name of numbers or arrays (broadcast to the result).
    """
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != reference {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    a = atol.get(want.dtype.name, 0.0) if isinstance(atol, dict) else atol
    g, w = got.astype(np.float64), want.astype(np.float64)
    ok = np.isclose(g, w, rtol=rtol[want.dtype.name], atol=a, equal_nan=True) | (g == w)
    if not ok.all():
        bad = [tuple(int(i) for i in ix) for ix in np.argwhere(~ok)[:4]] if ok.ndim else [()]
        shown = ", ".join(f"at {ix}: got {g[ix]!r} want {w[ix]!r}" for ix in bad)
        raise AssertionError(f"{what}: {int((~ok).sum())} of {ok.size} {want.dtype} elements differ "
                             f"(rtol {rtol[want.dtype.name]}): {shown}")


def abs_sum(x, axis=None, keepdims=False, scale=1.0):
    """``scale`` times the sum of |x| over the finite elements (float64): the scale of a sum's rounding
    error; the product is taken first so that huge elements do not overflow."""
    x = np.asarray(x, dtype=np.float64)
    return np.sum(np.where(np.isfinite(x), np.abs(x) * scale, 0.0), axis=axis, keepdims=keepdims)


def rejects(build, *dtypes_shapes) -> bool:
    """True when building ``build(*placeholders)`` raises TypeError for placeholders of these (dtype, shape)."""
    graph = tf.Graph()
    with graph.as_default():
        phs = [tf.placeholder(tf.as_dtype(d), s) for d, s in dtypes_shapes]
        try:
            build(*phs)
        except TypeError:
            return True
    return False
