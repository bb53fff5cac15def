"""Every public op: compiled (`Session.run`) equals the reference interpreter on the same lowered IR.

Each test draws dtypes, (broadcasting) shapes and values with hypothesis, builds the op
on placeholders in a fresh graph and checks both paths through `difftest.check`; a few
also compare the reference with plain numpy where numpy has the same semantics. Ops
that refuse a dtype must raise TypeError while the graph is built.
"""

from __future__ import annotations

import operator

import numpy as np
import pytest
from difftest import (
    ALL,
    BOOL,
    BROADCAST_PAIRS,
    EXACT,
    FLOATS,
    LOOSE,
    NUMERIC,
    SIGNED,
    ULP,
    abs_sum,
    arrays,
    assert_same,
    build_graph,
    check,
    edge_values,
    eps,
    reference,
    rejects,
    shapes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuseflow as tf

FAST = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
MODES = ("static", "dims", "rank")  # placeholder shapes: exact, unknown dims, unknown rank
TINY = {d: float(np.finfo(d).tiny) for d in FLOATS}


def np_ref(fn):
    """`fn` with numpy's floating-point warnings silenced (the reference silences them too)."""
    def call(*args, **kwargs):
        with np.errstate(all="ignore"):
            return np.asarray(fn(*args, **kwargs))

    return call


# ----------------------------------------------------------------------------- elementwise: unary

# name: (op, dtypes, float tolerance, numpy equivalent or None)
UNARY = {
    "negative": (tf.negative, SIGNED, EXACT, np.negative),
    "abs": (tf.abs, SIGNED, EXACT, np.abs),
    "sign": (tf.sign, SIGNED, EXACT, np.sign),
    "reciprocal": (tf.reciprocal, SIGNED, EXACT, None),
    "square": (tf.square, NUMERIC, EXACT, np.square),
    "sqrt": (tf.sqrt, FLOATS, EXACT, np.sqrt),
    "rsqrt": (tf.rsqrt, FLOATS, ULP, None),
    "exp": (tf.exp, FLOATS, ULP, np.exp),
    "log": (tf.log, FLOATS, ULP, np.log),
    "log1p": (tf.log1p, FLOATS, ULP, np.log1p),
    "tanh": (tf.tanh, FLOATS, ULP, np.tanh),
    "sigmoid": (tf.sigmoid, FLOATS, ULP, None),
    "sin": (tf.sin, FLOATS, ULP, np.sin),
    "cos": (tf.cos, FLOATS, ULP, np.cos),
    "floor": (tf.floor, FLOATS, EXACT, np.floor),
    "ceil": (tf.ceil, FLOATS, EXACT, np.ceil),
    "round": (tf.round, NUMERIC, EXACT, np.round),
    "logical_not": (tf.logical_not, BOOL, EXACT, np.logical_not),
    "nn.relu": (tf.nn.relu, NUMERIC, EXACT, None),
    "nn.relu6": (tf.nn.relu6, NUMERIC, EXACT, None),
    "nn.elu": (tf.nn.elu, FLOATS, ULP, None),
    "nn.sigmoid": (tf.nn.sigmoid, FLOATS, ULP, None),
    "nn.tanh": (tf.nn.tanh, FLOATS, ULP, np.tanh),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(data=st.data())
def test_unary(name, data):
    fn, dtypes, rtol, np_fn = UNARY[name]
    dtype = data.draw(st.sampled_from(dtypes), "dtype")
    x = data.draw(arrays(dtype, data.draw(shapes(), "shape")), "x")
    mode = data.draw(st.sampled_from(MODES), "mode")
    (want,) = check(fn, [x], rtol, TINY, mode)
    if np_fn is not None:
        assert_same(want, np_ref(np_fn)(x), rtol, TINY, what=f"reference vs numpy {name}")


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_edges(name):
    fn, dtypes, rtol, np_fn = UNARY[name]
    for dtype in dtypes:
        x = edge_values(dtype)
        (want,) = check(fn, [x], rtol, TINY)
        if np_fn is not None:
            assert_same(want, np_ref(np_fn)(x), rtol, TINY, what=f"reference vs numpy {name} {dtype}")


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_rejects_dtypes(name):
    fn, dtypes, _, _ = UNARY[name]
    for d in ALL:
        assert rejects(fn, (d, (2,))) == (d not in dtypes), f"{name} on {d}"


# ----------------------------------------------------------------------------- elementwise: binary


def _int_divisor(dtype, side):
    # Integer division: no zero divisor, no MIN // -1 (both undefined or overflowing in TF).
    return {"nonzero": True} if side == 1 else {"lo": np.iinfo(dtype).min + 1}


def _int_pow(dtype, side):
    return {"lo": -6, "hi": 6} if side == 0 else {"lo": -3, "hi": 6}


# name: (op, dtypes, float tolerance, numpy equivalent or None, integer domain per side or None)
BINARY = {
    "add": (tf.add, NUMERIC, EXACT, np.add, None),
    "subtract": (tf.subtract, NUMERIC, EXACT, np.subtract, None),
    "multiply": (tf.multiply, NUMERIC, EXACT, np.multiply, None),
    "divide": (tf.divide, NUMERIC, EXACT, None, None),
    "truediv": (tf.truediv, NUMERIC, EXACT, None, None),
    "floordiv": (tf.floordiv, NUMERIC, EXACT, np.floor_divide, _int_divisor),
    "mod": (tf.mod, NUMERIC, EXACT, np.mod, _int_divisor),
    "pow": (tf.pow, NUMERIC, ULP, None, _int_pow),
    "maximum": (tf.maximum, NUMERIC, EXACT, np.maximum, None),
    "minimum": (tf.minimum, NUMERIC, EXACT, np.minimum, None),
    "equal": (tf.equal, ALL, EXACT, np.equal, None),
    "not_equal": (tf.not_equal, ALL, EXACT, np.not_equal, None),
    "less": (tf.less, NUMERIC, EXACT, np.less, None),
    "less_equal": (tf.less_equal, NUMERIC, EXACT, np.less_equal, None),
    "greater": (tf.greater, NUMERIC, EXACT, np.greater, None),
    "greater_equal": (tf.greater_equal, NUMERIC, EXACT, np.greater_equal, None),
    "logical_and": (tf.logical_and, BOOL, EXACT, np.logical_and, None),
    "logical_or": (tf.logical_or, BOOL, EXACT, np.logical_or, None),
}


def draw_operands(data, dtype, operand_shapes, int_domain=None):
    out = []
    for side, shape in enumerate(operand_shapes):
        kw = int_domain(np.dtype(dtype), side) if int_domain and np.dtype(dtype).kind in "iu" else {}
        out.append(data.draw(arrays(dtype, shape, **kw), f"operand {side}"))
    return out


@pytest.mark.parametrize("name", sorted(BINARY))
@FAST
@given(data=st.data())
def test_binary(name, data):
    fn, dtypes, rtol, np_fn, int_domain = BINARY[name]
    dtype = data.draw(st.sampled_from(dtypes), "dtype")
    x, y = draw_operands(data, dtype, data.draw(st.sampled_from(BROADCAST_PAIRS), "shapes"), int_domain)
    mode = data.draw(st.sampled_from(MODES), "mode")
    (want,) = check(fn, [x, y], rtol, TINY, mode)
    if np_fn is not None:
        assert_same(want, np.asarray(np_ref(np_fn)(x, y)), rtol, TINY, what=f"reference vs numpy {name}")


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_edges(name):
    """Every pair of edge values (an outer product by broadcasting), for every dtype the op takes."""
    fn, dtypes, rtol, np_fn, int_domain = BINARY[name]
    for dtype in dtypes:
        kw = [int_domain(np.dtype(dtype), side) if int_domain and np.dtype(dtype).kind in "iu" else {}
              for side in (0, 1)]
        x, y = edge_values(dtype, **kw[0])[:, None], edge_values(dtype, **kw[1])[None, :]
        (want,) = check(fn, [x, y], rtol, TINY)
        if np_fn is not None:
            assert_same(want, np_ref(np_fn)(x, y), rtol, TINY, what=f"reference vs numpy {name} {dtype}")


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_rejects_dtypes(name):
    fn, dtypes, _, _, _ = BINARY[name]
    for d in ALL:
        assert rejects(fn, (d, (2,)), (d, (2,))) == (d not in dtypes), f"{name} on {d}"
    assert rejects(fn, ("float32", (2,)), ("float64", (2,))), f"{name} on mixed dtypes"


def test_truediv_casts_integers_as_tf():
    for d, to in [("int8", "float32"), ("uint8", "float32"), ("int16", "float32"), ("int32", "float64"),
                  ("int64", "float64")]:
        x = np.array([7, 0, 9], d)
        y = np.array([2, 0, 0], d)
        (want,) = check(tf.truediv, [x, y])
        assert want.dtype == np.dtype(to)
        np.testing.assert_array_equal(want, np_ref(np.true_divide)(x.astype(to), y.astype(to)))


WHERE_SHAPES = (((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()), ((4,), (3, 4), (3, 1)), ((), (2, 3), (3,)))


@FAST
@given(data=st.data())
def test_where(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    cs, xs, ys = data.draw(st.sampled_from(WHERE_SHAPES), "shapes")
    c = data.draw(arrays("bool", cs), "cond")
    x, y = draw_operands(data, dtype, (xs, ys))
    mode = data.draw(st.sampled_from(MODES), "mode")
    (want,) = check(lambda c, x, y: tf.where(c, x, y), [c, x, y], mode=mode)
    assert_same(want, np.where(c, x, y), what="reference vs numpy where")


def test_where_rejects():
    assert rejects(lambda c, x, y: tf.where(c, x, y), ("int32", (2,)), ("float32", (2,)), ("float32", (2,)))
    assert rejects(lambda c, x, y: tf.where(c, x, y), ("bool", (2,)), ("float32", (2,)), ("int32", (2,)))


def _cast_domain(src, dst):
    """Values of `src` whose conversion to `dst` is defined (floats into ints: in range after truncation)."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src.kind == "f" and dst.kind in "iu":
        info = np.iinfo(dst)
        return {"lo": max(float(info.min), -1e6), "hi": min(float(info.max), 1e6), "special": False}
    return {}


@FAST
@given(data=st.data())
def test_cast(data):
    src = data.draw(st.sampled_from(ALL), "src")
    dst = data.draw(st.sampled_from(ALL), "dst")
    x = data.draw(arrays(src, data.draw(shapes(), "shape"), **_cast_domain(src, dst)), "x")
    (want,) = check(lambda x: tf.cast(x, dst), [x])
    assert want.dtype == np.dtype(dst)


def test_cast_edges():
    """Every (source, target) pair over the source's edge values that the target can hold."""
    for src in ALL:
        for dst in ALL:
            x = edge_values(src, **_cast_domain(src, dst))
            (want,) = check(lambda t, dst=dst: tf.cast(t, dst), [x])
            if np.dtype(src).kind != "f" or np.dtype(dst).kind not in "iu":
                assert_same(want, np_ref(x.astype)(dst), what=f"reference vs numpy cast {src} -> {dst}")


# ----------------------------------------------------------------------------- Python operators

ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
         "//": operator.floordiv, "%": operator.mod, "**": operator.pow}
COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
LOGIC = {"&": operator.and_, "|": operator.or_, "^": operator.xor}


@pytest.mark.parametrize("sym", sorted(ARITH) + sorted(COMPARE))
@FAST
@given(data=st.data())
def test_binary_operators(sym, data):
    fn = ARITH.get(sym) or COMPARE[sym]
    dtype = data.draw(st.sampled_from(NUMERIC), "dtype")
    domain = {"//": _int_divisor, "%": _int_divisor, "**": _int_pow}.get(sym)
    x, y = draw_operands(data, dtype, data.draw(st.sampled_from(BROADCAST_PAIRS), "shapes"), domain)
    rtol = ULP if sym == "**" else EXACT
    check(fn, [x, y], rtol, TINY)
    # A Python number on either side takes the tensor's dtype.
    check(lambda a: fn(a, 3), [x], rtol, TINY)
    check(lambda b: fn(2, b), [y], rtol, TINY)


@pytest.mark.parametrize("sym", sorted(LOGIC))
@FAST
@given(data=st.data())
def test_logical_operators(sym, data):
    x, y = draw_operands(data, "bool", data.draw(st.sampled_from(BROADCAST_PAIRS), "shapes"))
    (want,) = check(LOGIC[sym], [x, y])
    assert_same(want, LOGIC[sym](x, y), what=f"reference vs numpy {sym}")
    check(lambda a: LOGIC[sym](True, a), [x])


@FAST
@given(data=st.data())
def test_unary_operators(data):
    dtype = data.draw(st.sampled_from(SIGNED), "dtype")
    x = data.draw(arrays(dtype, data.draw(shapes(), "shape")), "x")
    neg, ab = check(lambda a: [-a, abs(a)], [x])
    assert_same(neg, -x, what="reference vs numpy -x")
    assert_same(ab, np.abs(x), what="reference vs numpy abs(x)")
    b = data.draw(arrays("bool", x.shape), "b")
    (inv,) = check(lambda a: ~a, [b])
    assert_same(inv, ~b, what="reference vs numpy ~x")


def test_operator_rejections():
    assert rejects(lambda a, b: a & b, ("int32", (2,)), ("int32", (2,)))
    assert rejects(lambda a: ~a, ("float32", (2,)))
    assert rejects(lambda a: -a, ("uint8", (2,)))
    assert rejects(lambda a, b: a < b, ("bool", (2,)), ("bool", (2,)))


# ----------------------------------------------------------------------------- reductions

REDUCTIONS = {"reduce_sum": (tf.reduce_sum, np.sum), "reduce_mean": (tf.reduce_mean, None),
              "reduce_max": (tf.reduce_max, np.max), "reduce_min": (tf.reduce_min, np.min),
              "reduce_prod": (tf.reduce_prod, None)}


@st.composite
def axes_for(draw, rank):
    """None, one axis (maybe negative), or a list of distinct axes (maybe negative, maybe empty)."""
    if rank == 0:  # a scalar accepts axis 0 (reducing it is a no-op)
        return draw(st.sampled_from([None, [], 0, [0]]))
    kind = draw(st.sampled_from(["none", "int", "list"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-rank, rank - 1))
    axes = draw(st.lists(st.integers(0, rank - 1), unique=True, max_size=rank)) if rank else []
    return [a - rank if draw(st.booleans()) else a for a in axes]


def reduced_count(shape, axis) -> int:
    if axis is None or not shape:
        return int(np.prod(shape))
    axes = [axis] if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


def reduction_tolerance(name, x, axis, keepdims, n):
    """Kernels may accumulate in the operand's own precision (as TF does): allow n roundings of each
    partial sum (scaled by the sum of |x| it reduces), or of the product."""
    rtol = {d: 2 * n * eps(d) for d in FLOATS}
    if name == "reduce_prod":
        return rtol, TINY
    return rtol, {d: abs_sum(x, axis, keepdims, scale=n * eps(d)) for d in FLOATS}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FAST
@given(data=st.data())
def test_reduction(name, data):
    fn, np_fn = REDUCTIONS[name]
    dtype = data.draw(st.sampled_from(NUMERIC), "dtype")
    shape = data.draw(shapes(), "shape")
    kw = {"lo": -2, "hi": 2} if name == "reduce_prod" else {"lo": -1000, "hi": 1000}
    x = data.draw(arrays(dtype, shape, **kw), "x")
    axis = data.draw(axes_for(len(shape)), "axis")
    keepdims = data.draw(st.booleans(), "keepdims")
    mode = data.draw(st.sampled_from(MODES), "mode")
    n = max(reduced_count(shape, axis), 1)
    np_axis = tuple(np.atleast_1d(axis)) if shape and axis is not None else None
    rtol, atol = reduction_tolerance(name, x, np_axis, keepdims, n)
    (want,) = check(lambda t: fn(t, axis=axis, keepdims=keepdims), [x], rtol, atol, mode)
    if np_fn is not None:
        assert_same(want, np_ref(np_fn)(x, axis=np_axis, keepdims=keepdims).astype(x.dtype), rtol, atol,
                    what=f"reference vs numpy {name}")


def edge_matrix(dtype) -> np.ndarray:
    """Rows of 4 edge values: sliding windows of the sorted values (all-negative rows first, NaN and
    infinities last), the same reversed, and a row of ties."""
    v = edge_values(dtype)
    rows = [v[i:i + 4] for i in range(len(v) - 3)]
    return np.array(rows + [r[::-1] for r in rows] + [[v[1], v[1], v[0], v[0]]], dtype)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_edges(name):
    fn, _ = REDUCTIONS[name]
    for dtype in NUMERIC:
        x = edge_matrix(dtype)
        if name == "reduce_prod" and x.dtype.kind == "f":
            x = np.where(np.abs(x) > 10, x / 50, x).astype(dtype)  # products of edges stay finite
        for axis, keep in [(1, False), ([-2], True)]:
            rtol, atol = reduction_tolerance(name, x, tuple(np.atleast_1d(axis)), keep, x.shape[axis[0] if keep else 1])
            check(lambda t, axis=axis, keep=keep: fn(t, axis=axis, keepdims=keep), [x], rtol, atol)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # numpy's, inside the reference's float mean
def test_reduction_of_empty_tensors(name):
    """Reducing nothing gives the identity (NaN for a float mean, the extremes for max/min)."""
    fn, _ = REDUCTIONS[name]
    for dtype in ("float32", "float16", "int32", "uint8"):
        x = np.zeros((0, 3), dtype)
        check(lambda t: [fn(t, axis=0), fn(t, axis=1), fn(t), fn(t, axis=[0, 1], keepdims=True)], [x])


def test_reduction_legacy_names_and_rejects():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (want,) = check(lambda t: tf.reduce_sum(t, reduction_indices=[1], keep_dims=True), [x])
    np.testing.assert_array_equal(want, [[3], [12]])
    for name, (fn, _) in REDUCTIONS.items():
        assert rejects(fn, ("bool", (2,))), name


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@FAST
@given(data=st.data())
def test_arg_reduction(name, data):
    fn = getattr(tf, name)
    dtype = data.draw(st.sampled_from(NUMERIC), "dtype")
    shape = data.draw(shapes(1), "shape")
    x = data.draw(arrays(dtype, shape), "x")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), "axis")
    out_type = data.draw(st.sampled_from([tf.int32, tf.int64]), "output_type")
    (want,) = check(lambda t: fn(t, axis=axis, output_type=out_type), [x])
    assert_same(want, getattr(np, name)(x, axis=axis).astype(out_type.np), what=f"reference vs numpy {name}")
    assert rejects(fn, ("bool", (2,)))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reduction_edges(name):
    for dtype in NUMERIC:
        x = edge_matrix(dtype)
        for axis in (1, 0):
            (want,) = check(lambda t, axis=axis: getattr(tf, name)(t, axis=axis), [x])
            assert_same(want, getattr(np, name)(x, axis=axis), what=f"reference vs numpy {name}")


# ----------------------------------------------------------------------------- matmul


@FAST
@given(data=st.data())
def test_matmul(data):
    dtype = data.draw(st.sampled_from(NUMERIC), "dtype")
    m, k, n = (data.draw(st.integers(1, 4), d) for d in "mkn")
    ta, tb = data.draw(st.booleans(), "transpose_a"), data.draw(st.booleans(), "transpose_b")
    batch_a, batch_b = data.draw(st.sampled_from([((), ()), ((2,), (2,)), ((1,), (3,)), ((2,), ())]), "batch")
    a = data.draw(arrays(dtype, batch_a + ((k, m) if ta else (m, k)), lo=-10, hi=10, special=False), "a")
    b = data.draw(arrays(dtype, batch_b + ((n, k) if tb else (k, n)), lo=-10, hi=10, special=False), "b")
    bound = float(np.abs(a.astype(np.float64)).max() * np.abs(b.astype(np.float64)).max()) * k
    atol = {d: 2 * eps(d) * bound for d in FLOATS}
    (want,) = check(lambda u, v: tf.matmul(u, v, transpose_a=ta, transpose_b=tb), [a, b], LOOSE, atol)
    if np.dtype(dtype).kind == "f":
        ua, vb = (np.swapaxes(a, -1, -2) if ta else a), (np.swapaxes(b, -1, -2) if tb else b)
        exact = np.matmul(ua.astype(np.float64), vb.astype(np.float64))
        assert_same(want.astype(np.float64), exact, LOOSE, atol[str(dtype)], what="reference vs numpy matmul")
    if not ta and not tb:
        check(operator.matmul, [a, b], LOOSE, atol)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_matmul_all_layouts(dtype):
    rng = np.random.default_rng(0)
    m, k, n = 2, 3, 4
    for ta in (False, True):
        for tb in (False, True):
            for batch_a, batch_b in [((), ()), ((2,), (2,)), ((1,), (3,)), ((2,), ()), ((), (3,))]:
                a = rng.integers(-5, 5, batch_a + ((k, m) if ta else (m, k))).astype(dtype)
                b = rng.integers(-5, 5, batch_b + ((n, k) if tb else (k, n))).astype(dtype)
                (want,) = check(lambda u, v, ta=ta, tb=tb: tf.matmul(u, v, transpose_a=ta, transpose_b=tb), [a, b])
                ua, vb = (np.swapaxes(a, -1, -2) if ta else a), (np.swapaxes(b, -1, -2) if tb else b)
                assert_same(want, np.matmul(ua, vb), what=f"reference vs numpy matmul {ta} {tb}")


def test_matmul_rejects():
    assert rejects(tf.matmul, ("bool", (2, 2)), ("bool", (2, 2)))
    assert rejects(tf.matmul, ("float32", (2, 2)), ("float64", (2, 2)))


# ----------------------------------------------------------------------------- data movement


def prime_factors(n: int) -> list:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@st.composite
def reshape_target(draw, size):
    """A shape with `size` elements, maybe with one dim written -1."""
    k = draw(st.integers(1 if size > 1 else 0, 3))
    dims = [1] * k
    for p in prime_factors(size):
        dims[draw(st.integers(0, k - 1))] *= p
    if dims and draw(st.booleans()):
        dims[draw(st.integers(0, k - 1))] = -1
    return dims


@FAST
@given(data=st.data())
def test_reshape(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    x = data.draw(arrays(dtype, data.draw(shapes(), "shape")), "x")
    target = data.draw(reshape_target(x.size), "target")
    (want,) = check(lambda t: tf.reshape(t, target), [x], mode=data.draw(st.sampled_from(MODES)))
    assert_same(want, x.reshape(target), what="reference vs numpy reshape")
    y = np.zeros(want.shape, np.float32)  # a shape given as a tensor
    check(lambda t, u: tf.reshape(t, tf.shape(u)), [x, y])


@FAST
@given(data=st.data())
def test_transpose(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    shape = data.draw(shapes(), "shape")
    x = data.draw(arrays(dtype, shape), "x")
    perm = data.draw(st.none() | st.permutations(range(len(shape))), "perm")
    (want,) = check(lambda t: tf.transpose(t, perm), [x])
    assert_same(want, np.transpose(x, perm), what="reference vs numpy transpose")


@FAST
@given(data=st.data())
def test_concat(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    shape = data.draw(shapes(1), "shape")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), "axis")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3), "sizes")
    parts = [data.draw(arrays(dtype, shape[:axis % len(shape)] + (s,) + shape[axis % len(shape) + 1:]))
             for s in sizes]
    (want,) = check(lambda *ts: tf.concat(list(ts), axis), parts)
    assert_same(want, np.concatenate(parts, axis), what="reference vs numpy concat")


@FAST
@given(data=st.data())
def test_stack_unstack(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    shape = data.draw(shapes(0, 2), "shape")
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), "axis")
    parts = [data.draw(arrays(dtype, shape)) for _ in range(data.draw(st.integers(1, 3), "n"))]
    (want,) = check(lambda *ts: tf.stack(list(ts), axis=axis), parts)
    assert_same(want, np.stack(parts, axis), what="reference vs numpy stack")
    got = check(lambda t: tf.unstack(t, axis=axis), [want])
    for g, p in zip(got, parts):
        assert_same(g, p, what="unstack(stack(parts))")


@FAST
@given(data=st.data())
def test_split(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    shape = data.draw(shapes(1, 3), "shape")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), "axis")
    dim = shape[axis]
    x = data.draw(arrays(dtype, shape), "x")
    if data.draw(st.booleans(), "equal parts"):
        num = data.draw(st.sampled_from([d for d in range(1, dim + 1) if dim % d == 0]), "num")
        got = check(lambda t: tf.split(t, num, axis=axis), [x])
        want = np.split(x, num, axis)
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, dim), max_size=3), "cuts"))
        sizes = np.diff([0] + cuts + [dim]).tolist()
        spec = list(sizes)
        if data.draw(st.booleans(), "use -1"):
            spec[data.draw(st.integers(0, len(spec) - 1))] = -1
        got = check(lambda t: tf.split(t, spec, axis=axis), [x])
        want = np.split(x, cuts, axis)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_same(g, w, what="reference vs numpy split")


@FAST
@given(data=st.data())
def test_expand_dims_squeeze(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    shape = data.draw(shapes(0, 3), "shape")
    x = data.draw(arrays(dtype, shape), "x")
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), "axis")
    (want,) = check(lambda t: tf.expand_dims(t, axis), [x])
    assert_same(want, np.expand_dims(x, axis), what="reference vs numpy expand_dims")
    ones = [i for i, d in enumerate(want.shape) if d == 1]
    sq_axis = data.draw(st.none() | st.lists(st.sampled_from(ones), min_size=1, unique=True)
                        .map(lambda a: [i - len(want.shape) if i % 2 else i for i in a]), "squeeze axis")
    (sq,) = check(lambda t: tf.squeeze(t, sq_axis), [want], mode=data.draw(st.sampled_from(["static", "dims"])))
    np_axis = None if sq_axis is None else tuple(sq_axis)
    assert_same(sq, np.squeeze(want, np_axis), what="reference vs numpy squeeze")


@FAST
@given(data=st.data())
def test_shape_size_rank(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    x = data.draw(arrays(dtype, data.draw(shapes(), "shape")), "x")
    out_type = data.draw(st.sampled_from([tf.int32, tf.int64]), "out_type")
    mode = data.draw(st.sampled_from(MODES), "mode")
    shape, size, rank = check(lambda t: [tf.shape(t, out_type=out_type), tf.size(t, out_type=out_type),
                                         tf.rank(t)], [x], mode=mode)
    assert_same(shape, np.array(x.shape, out_type.np))
    assert_same(size, np.array(x.size, out_type.np))
    assert_same(rank, np.array(x.ndim, np.int32))


@FAST
@given(data=st.data())
def test_fill_zeros_ones(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    shape = list(data.draw(shapes(), "shape"))
    v = data.draw(arrays(dtype, ()), "value")
    like = data.draw(st.sampled_from([None, *ALL]), "like dtype")
    x = np.zeros(shape, dtype)
    z, o, f, f2, zl, ol = check(lambda val, t: [
        tf.zeros(shape, dtype), tf.ones(shape, dtype), tf.fill(shape, val), tf.fill(tf.shape(t), val),
        tf.zeros_like(t, like), tf.ones_like(t, like)], [v, x])
    assert_same(z, np.zeros(shape, dtype))
    assert_same(o, np.ones(shape, dtype))
    assert_same(f, np.full(shape, v, dtype))
    assert_same(f2, np.full(shape, v, dtype))
    assert_same(zl, np.zeros(shape, like or dtype))
    assert_same(ol, np.ones(shape, like or dtype))


@FAST
@given(data=st.data())
def test_range(data):
    floats = data.draw(st.booleans(), "floats")
    num = st.floats(-8, 8).map(lambda v: round(v, 2)) if floats else st.integers(-8, 8)
    start, limit = data.draw(num, "start"), data.draw(num, "limit")
    delta = data.draw(num.filter(lambda d: d != 0), "delta")
    if floats:
        dtype = data.draw(st.sampled_from([None, tf.float32, tf.float64]), "dtype")
    else:
        dtype = data.draw(st.sampled_from([None, tf.int32, tf.int64, tf.float32, tf.float64]), "dtype")
    (want,) = check(lambda: tf.range(start, limit, delta, dtype=dtype), [])
    np_dtype = (dtype.np if dtype else np.dtype(np.float32 if floats else np.int32))
    assert_same(want, np.arange(start, limit, delta).astype(np_dtype), LOOSE, 1e-5, what="reference vs arange")
    if not floats and start >= 0:
        check(lambda: tf.range(start), [])


@FAST
@given(data=st.data())
def test_one_hot(data):
    idx_dtype = data.draw(st.sampled_from(["int32", "int64", "uint8", "int8"]), "index dtype")
    shape = data.draw(shapes(0, 2), "shape")
    depth = data.draw(st.integers(1, 4), "depth")
    idx = data.draw(arrays(idx_dtype, shape, lo=-1, hi=depth), "indices")
    axis = data.draw(st.sampled_from([None, -1] + list(range(len(shape) + 1))), "axis")
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    on, off = (True, False) if dtype == "bool" else (3, 1)
    (want,) = check(lambda i: tf.one_hot(i, depth, on_value=on, off_value=off, axis=axis, dtype=dtype), [idx])
    hot = idx.astype(np.int64)[..., None] == np.arange(depth)
    expect = np.where(hot, on, off).astype(dtype)
    assert_same(want, np.moveaxis(expect, -1, -1 if axis is None else axis), what="reference vs numpy one_hot")
    assert rejects(lambda i: tf.one_hot(i, 3), ("float32", (2,)))


@FAST
@given(data=st.data())
def test_gather(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    shape = data.draw(shapes(1, 3), "shape")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), "axis")
    idx_dtype = data.draw(st.sampled_from(["int32", "int64"]), "index dtype")
    idx = data.draw(arrays(idx_dtype, data.draw(shapes(0, 2), "index shape"), lo=0, hi=shape[axis] - 1))
    x = data.draw(arrays(dtype, shape), "params")
    (want,) = check(lambda p, i: tf.gather(p, i, axis=axis), [x, idx])
    assert_same(want, np.take(x, idx, axis=axis), what="reference vs numpy take")
    assert rejects(lambda p, i: tf.gather(p, i), ("float32", (3,)), ("float32", (2,)))


def test_fetches_do_not_alias_feeds():
    arr = np.zeros((2, 3), np.float32)
    graph, (x,), fetches = build_graph(lambda t: [tf.identity(t), tf.reshape(t, [-1]), tf.expand_dims(t, 0)], [arr])
    with tf.Session(graph=graph) as sess:
        outs = sess.run(fetches, {x: arr})
    for t, out in zip(fetches, outs):
        assert not np.shares_memory(out, arr), f"{t.name} aliases the fed array"


def test_gather_out_of_range_is_an_error():
    graph, (p, i), (out,) = build_graph(lambda p, i: tf.gather(p, i), [np.zeros(3, np.float32), np.zeros(2, np.int32)])
    with tf.Session(graph=graph) as sess, pytest.raises(tf.errors.InvalidArgumentError):
        sess.run(out, {p: np.zeros(3, np.float32), i: np.array([0, 3], np.int32)})


@FAST
@given(data=st.data())
def test_tile(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    shape = data.draw(shapes(0, 3), "shape")
    reps = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape)), "multiples")
    x = data.draw(arrays(dtype, shape), "x")
    (want,) = check(lambda t: tf.tile(t, reps), [x])
    assert_same(want, np.tile(x, reps) if shape else x, what="reference vs numpy tile")


@FAST
@given(data=st.data())
def test_clip_by_value(data):
    dtype = data.draw(st.sampled_from(NUMERIC), "dtype")
    shape = data.draw(shapes(), "shape")
    x = data.draw(arrays(dtype, shape), "x")
    lo = data.draw(arrays(dtype, data.draw(st.sampled_from([(), shape]), "lo shape")), "lo")
    hi = data.draw(arrays(dtype, ()), "hi")
    (want,) = check(lambda t, a, b: tf.clip_by_value(t, a, b), [x, lo, hi])
    assert_same(want, np.minimum(np.maximum(x, lo), hi), what="reference vs numpy clip")
    py_lo, py_hi = (0, 5) if np.dtype(dtype).kind in "iu" else (-0.5, 2.5)
    check(lambda t: tf.clip_by_value(t, py_lo, py_hi), [x])


# ----------------------------------------------------------------------------- slicing


@st.composite
def slice_keys(draw, shape):
    """A key of ints (maybe negative), slices (any bounds and steps), at most one Ellipsis, and newaxis."""
    items = []
    for n in shape:
        if draw(st.booleans()):
            items.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.none() | st.integers(-n - 2, n + 2)
            step = st.sampled_from([None, 1, 2, 3, -1, -2])
            items.append(slice(draw(bound), draw(bound), draw(step)))
    if draw(st.booleans()):  # replace a run of dims (maybe empty) by ...
        i = draw(st.integers(0, len(items)))
        j = draw(st.integers(i, len(items)))
        items[i:j] = [Ellipsis]
    elif items and draw(st.booleans()):  # or leave trailing dims implicit
        items = items[:draw(st.integers(0, len(items)))]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    return tuple(items) if len(items) != 1 or draw(st.booleans()) else items[0]


@FAST
@given(data=st.data())
def test_slicing(data):
    dtype = data.draw(st.sampled_from(ALL), "dtype")
    x = data.draw(arrays(dtype, data.draw(shapes(0, 3), "shape")), "x")
    key = data.draw(slice_keys(x.shape), "key")
    (want,) = check(lambda t: t[key], [x])
    assert_same(want, np.asarray(x[key]), what=f"reference vs numpy x[{key!r}]")


S = slice
SLICE_KEYS = [
    (S(None, None, -1),), (S(None, None, -2), S(1, None, -1)), (-1,), (-3, -1, -5), (Ellipsis, -1),
    (Ellipsis, S(None, None, -1)), (None, Ellipsis, None), (S(-100, 100),), (S(5, -5, -1),), (S(2, 1),),
    (1, None, S(None, None, 3), Ellipsis), (Ellipsis,), (), (0, 0, 0), (S(None), None, 2),
    (S(-2, None, -2), Ellipsis, S(3, 0, -2)), (S(1, 3), S(-1, -4, -1), S(None, -1)), 2, None, Ellipsis,
]


def test_slicing_edges():
    x = np.arange(60).reshape(3, 4, 5)
    for i, key in enumerate(SLICE_KEYS):
        xd = x.astype(ALL[i % len(ALL)])
        (want,) = check(lambda t, key=key: t[key], [xd])
        assert_same(want, np.asarray(xd[key]), what=f"reference vs numpy x[{key!r}]")


def test_slicing_rejects_bad_keys():
    with pytest.raises(TypeError):
        build_graph(lambda t: t[1.5], [np.zeros(3)])
    with pytest.raises(ValueError):
        build_graph(lambda t: t[..., 0, ...], [np.zeros((2, 3))])
    with pytest.raises(ValueError):
        build_graph(lambda t: t[3], [np.zeros(3)])


# ----------------------------------------------------------------------------- nn


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@FAST
@given(data=st.data())
def test_softmax(name, data):
    fn = getattr(tf.nn, name)
    dtype = data.draw(st.sampled_from(FLOATS), "dtype")
    shape = data.draw(shapes(1, 3), "shape")
    x = data.draw(arrays(dtype, shape, lo=-30, hi=30, special=False), "x")
    axis = data.draw(st.sampled_from([None, 0, -1, len(shape) - 1]), "axis")
    atol = {d: 4 * eps(d) * (1 if name == "softmax" else 60) for d in FLOATS}
    (want,) = check(lambda t: fn(t) if axis is None else fn(t, axis=axis), [x], LOOSE, atol)
    x64 = x.astype(np.float64)
    ax = -1 if axis is None else axis
    z = x64 - x64.max(ax, keepdims=True)
    exact = np.exp(z) / np.exp(z).sum(ax, keepdims=True) if name == "softmax" else \
        z - np.log(np.exp(z).sum(ax, keepdims=True))
    assert_same(want.astype(np.float64), exact, LOOSE, 4 * atol[dtype], what=f"reference vs numpy {name}")
    assert rejects(fn, ("int32", (2, 2)))


@FAST
@given(data=st.data())
def test_bias_add(data):
    dtype = data.draw(st.sampled_from(NUMERIC), "dtype")
    shape = data.draw(shapes(2, 4), "shape")
    x = data.draw(arrays(dtype, shape), "value")
    b = data.draw(arrays(dtype, shape[-1:]), "bias")
    (want,) = check(tf.nn.bias_add, [x, b])
    assert_same(want, np_ref(np.add)(x, b), what="reference vs numpy bias_add")
    assert rejects(tf.nn.bias_add, ("bool", (2, 2)), ("bool", (2,)))


def test_nn_rejects_dtypes():
    assert rejects(tf.nn.elu, ("int32", (2,)))
    assert rejects(tf.nn.relu, ("bool", (2,)))


# ----------------------------------------------------------------------------- random numbers

RANDOM = {
    "random_uniform": lambda shape, dtype, seed: tf.random_uniform(shape, -2, 3, dtype=dtype, seed=seed),
    "random_normal": lambda shape, dtype, seed: tf.random_normal(shape, 1.5, 2.0, dtype=dtype, seed=seed),
    "truncated_normal": lambda shape, dtype, seed: tf.truncated_normal(shape, 1.5, 2.0, dtype=dtype, seed=seed),
}


def _random_graph(name, shape, dtype, graph_seed, op_seed):
    def build():
        tf.set_random_seed(graph_seed)
        return [RANDOM[name](shape, dtype, op_seed), RANDOM[name](shape, dtype, None)]

    return build_graph(build, [])


@pytest.mark.parametrize("name", sorted(RANDOM))
@settings(FAST, max_examples=6)
@given(data=st.data())
def test_random(name, data):
    dtype = data.draw(st.sampled_from(FLOATS), "dtype")
    shape = data.draw(shapes(0, 3), "shape")
    graph_seed = data.draw(st.sampled_from([None, 0, 7, 2**40]), "graph seed")
    op_seed = data.draw(st.sampled_from([None, 1, 123]), "op seed")
    graph, _, fetches = _random_graph(name, shape, dtype, graph_seed, op_seed)
    with tf.Session(graph=graph) as sess:
        first, second = sess.run(fetches), sess.run(fetches)
    for counter, got in enumerate([first, second]):
        for g, w in zip(got, reference(fetches, [], [], counter=counter)):
            assert_same(g, w, ULP, TINY, what=f"{name} run {counter}")
    if np.prod(shape) > 2:
        assert not np.array_equal(first[0], second[0]), "successive runs draw new numbers"
    for v in first + second:
        if name == "random_uniform":
            # [minval, maxval): a float16 draw just below 3 may round up to 3 itself
            assert np.all((v >= -2) & (v <= 3)) and (v.dtype == np.float16 or np.all(v < 3))
        elif name == "truncated_normal":
            assert np.all(np.abs(v.astype(np.float64) - 1.5) <= 4.0 * (1 + eps(dtype)))
    with tf.Session(graph=graph) as again:  # a new session starts the sequence again
        for a, b in zip(again.run(fetches), first):
            np.testing.assert_array_equal(a, b)
    if graph_seed is not None:  # the same program rebuilt under the same graph seed: the same numbers
        graph2, _, fetches2 = _random_graph(name, shape, dtype, graph_seed, op_seed)
        with tf.Session(graph=graph2) as sess2:
            for a, b in zip(sess2.run(fetches2), first):
                np.testing.assert_array_equal(a, b)


def test_random_rejects_integer_dtypes():
    for make in RANDOM.values():
        with pytest.raises(TypeError):
            make((2,), tf.int32, None)


def test_unseeded_random_differs_between_graphs():
    _, _, (a, _) = _random_graph("random_normal", (64,), tf.float32, None, None)
    _, _, (b, _) = _random_graph("random_normal", (64,), tf.float32, None, None)
    with tf.Session(graph=a.graph) as s1, tf.Session(graph=b.graph) as s2:
        assert not np.array_equal(s1.run(a), s2.run(b))
