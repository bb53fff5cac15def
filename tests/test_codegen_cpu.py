"""CPU backend: every op of the table compiled with numba and compared with the reference interpreter."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuseflow.codegen import helpers
from fuseflow.codegen.cpu import BUILDERS, KERNEL_STATS, NOT_COMPILED, compile_op
from fuseflow.ir import dtypes as dt
from fuseflow.ir import interp
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Op
from fuseflow.ir.opdefs import OPS
from fuseflow.ir.types import TensorType

DTYPES = [d for d in dt.ALL if d is not dt.string]
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5])
TOLERANCE = {dt.float16: (4e-3, 1e-3), dt.float32: (2e-5, 1e-6), dt.float64: (1e-11, 1e-12)}


def T(dtype, shape) -> TensorType:
    return TensorType(dtype, tuple(shape))


def accepts(name: str, types, attrs=None) -> bool:
    """Whether the op's type rule accepts operand `types` (dtype errors are TypeError)."""
    try:
        OPS[name].type_rule(tuple(types), attrs or {}, name)
        return True
    except TypeError:
        return False


def one_op_function(name: str, types, attrs):
    """``func(args) { r = name(args) {attrs}; return r }`` and its op."""
    b = Builder(types)
    b.op(name, *b.args, **attrs)
    op = b.block.ops[-1]
    return b.finish(list(op.results)), op


def random_array(rng, t: TensorType, op_name: str = "", position: int = 0, specials: bool = True):
    """Random values of `t`; floats include NaN/inf/zeros, ints span the range and small values."""
    shape, d = t.shape, t.dtype
    if d.is_bool:
        return np.asarray(rng.random(shape) < 0.5)
    if d.is_floating:
        x = rng.standard_normal(shape) * 3
        if specials and x.size:
            mask = rng.random(shape) < 0.15
            x = np.where(mask, rng.choice(SPECIALS, shape), x)
        return np.asarray(x).astype(d.np)
    info = np.iinfo(d.np)
    if op_name == "pow":
        lo, hi = (-3, 7) if position == 1 else (max(info.min, -5), 6)
        return rng.integers(lo, hi, size=shape).astype(d.np)
    wide = rng.integers(info.min, info.max, endpoint=True, size=shape, dtype=d.np)
    small = rng.integers(max(info.min, -3), 4, size=shape).astype(d.np)
    return np.where(rng.random(shape) < 0.5, small, wide).astype(d.np)


def assert_same(got, want, dtype: dt.DType, what: str = "") -> None:
    """Exact for ints, bools and raw copies; floats within the dtype's tolerance, NaNs in place."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if not dtype.is_floating:
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    rtol, atol = TOLERANCE[dtype]
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                               equal_nan=True, err_msg=what)


def check_op(name: str, types, attrs, rng, inputs=None, exact_floats: bool = False):
    """Compiles a one-op function's op and compares it with the interpreter on random inputs."""
    fn, op = one_op_function(name, types, attrs)
    if inputs is None:
        inputs = [random_array(rng, t, name, i) for i, t in enumerate(types)]
    check_compiled(op, fn, inputs, exact_floats)


def check_compiled(op: Op, fn, inputs, exact_floats: bool = False) -> None:
    want = interp.run_function(fn, *inputs)
    got = compile_op(op)(*inputs)
    assert isinstance(got, tuple) and len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        what = f"{op.name} {[str(t) for t in (v.type for v in op.operands)]} {op.attrs} result {k}"
        if exact_floats and w.dtype.kind == "f":
            assert g.dtype == w.dtype and g.shape == w.shape, what
            np.testing.assert_array_equal(g, w, err_msg=what)
        else:
            assert_same(g, w, dt.as_dtype(w.dtype), what)


# ----------------------------------------------------------------------------- the case table
# CASES[name]() -> [(operand types, attrs)]: every allowed dtype on one shape, plus variants
# (broadcasting, axes, transposes, empty dims) on a few dtypes. An op missing here fails.

FI = (dt.float32, dt.int32)


def _elementwise(name):
    arity = OPS[name].arity
    dtypes = [d for d in DTYPES if accepts(name, [T(d, ())] * arity)]
    shapes = {1: [(3, 4)], 2: [(3, 4), (4,)]}[arity]
    cases = [([T(d, s) for s in shapes], {}) for d in dtypes]
    if name in ("add", "pow", "maximum", "less", "floor_mod", "neg", "exp"):
        variants = [[(3, 1), (1, 4)], [(), (2, 3)], [(2, 1, 3), (4, 1)], [(0, 3), (1, 3)]] if arity == 2 \
            else [[()], [(2, 0)], [(2, 3, 4)]]
        cases += [([T(d, s) for s in shapes], {}) for d in FI if d in dtypes for shapes in variants]
    return cases


def _select():
    cases = [([T(dt.bool_, (3, 4)), T(d, (3, 4)), T(d, (4,))], {}) for d in DTYPES]
    shapes = [[(3, 1), (1, 4), ()], [(), (2, 3), (2, 1)], [(4,), (3, 4), (3, 4)]]
    return cases + [([T(dt.bool_, s[0]), T(dt.float32, s[1]), T(dt.float32, s[2])], {}) for s in shapes]


def _cast():
    # The full dtype matrix runs as fused regions (test_cast_matrix_fused); single ops here.
    cases = [([T(d, (3, 4))], {"dtype": dt.float32}) for d in DTYPES]
    return cases + [([T(dt.float32, (3, 4))], {"dtype": d}) for d in DTYPES]


def _broadcast_to():
    cases = [([T(d, (4,))], {"shape": (3, 4)}) for d in DTYPES]
    return cases + [([T(dt.float32, s)], {"shape": to}) for s, to in
                    [((3, 1), (2, 3, 5)), ((), (2, 2)), ((2, 3), (2, 3)), ((1,), (0,))]]


def _reduction(name):
    numeric = [d for d in DTYPES if d.is_numeric]
    cases = [([T(d, (3, 4))], {"axes": (1,), "keepdims": False}) for d in numeric]
    variants = [((3, 4), (0,), True), ((3, 4), (0, 1), False), ((3, 4), (), False), ((2, 0, 3), (1,), False),
                ((2, 3, 4), (0, 2), True), ((), (), False), ((2, 3, 4), (-1,), False)]
    return cases + [([T(d, s)], {"axes": a, "keepdims": k}) for d in FI for s, a, k in variants]


def _arg_reduction():
    numeric = [d for d in DTYPES if d.is_numeric]
    cases = [([T(d, (3, 4))], {"axis": 1, "output_type": dt.int64}) for d in numeric]
    return cases + [([T(dt.float32, (3, 4))], {"axis": 0, "output_type": dt.int32}),
                    ([T(dt.float16, (2, 3, 4))], {"axis": -1, "output_type": dt.int32}),
                    ([T(dt.int8, (5,))], {"axis": 0, "output_type": dt.int64})]


def _matmul():
    plain = {"transpose_a": False, "transpose_b": False}
    cases = [([T(d, (3, 4)), T(d, (4, 5))], plain) for d in DTYPES if d.is_numeric]
    for d in (dt.float32, dt.int32, dt.float16):
        cases += [([T(d, (4, 3)), T(d, (5, 4))], {"transpose_a": True, "transpose_b": True}),
                  ([T(d, (2, 3, 4)), T(d, (4, 5))], plain),
                  ([T(d, (2, 1, 3, 4)), T(d, (3, 2, 4))], {"transpose_a": False, "transpose_b": True}),
                  ([T(d, (3, 0)), T(d, (0, 2))], plain)]
    return cases


def _matmul_add():
    cases = []
    for d in (dt.float32, dt.float64):
        for ta, tb in [(False, False), (True, False), (False, True), (True, True)]:
            a, b = T(d, (4, 3) if ta else (3, 4)), T(d, (5, 4) if tb else (4, 5))
            cases.append(([a, b, T(d, (3, 5))], {"transpose_a": ta, "transpose_b": tb, "alpha": -0.25}))
        cases.append(([T(d, (3, 0)), T(d, (0, 2)), T(d, (3, 2))], {"transpose_a": False, "transpose_b": False,
                                                                   "alpha": 2.0}))
    return cases


def _slice():
    cases = [([T(d, (5, 6))], {"slices": ((1, 4, 1), (None, None, 2))}) for d in DTYPES]
    variants = [((None, None, -1), (4, 0, -2)), ((-3, None, None), (1, -1, None)), ((3, 3, 1), (None, None, 1)),
                ((10, -10, -3), (-100, 100, 4))]
    return cases + [([T(dt.float32, (5, 6))], {"slices": s}) for s in variants]


def _concat():
    cases = [([T(d, (2, 3)), T(d, (2, 2))], {"axis": 1}) for d in DTYPES]
    return cases + [([T(dt.float32, (2, 3)), T(dt.float32, (0, 3)), T(dt.float32, (1, 3))], {"axis": 0}),
                    ([T(dt.int32, (2, 1, 3)), T(dt.int32, (2, 1, 2))], {"axis": -1}),
                    ([T(dt.float16, (3,)), T(dt.float16, (4,))], {"axis": 0})]


def _gather():
    cases = [([T(d, (5, 3)), T(dt.int32, (4,))], {"axis": 0}) for d in DTYPES]
    return cases + [([T(dt.float32, (3, 4, 2)), T(dt.int64, (2, 2))], {"axis": 1}),
                    ([T(dt.float32, (3, 4)), T(dt.int64, ())], {"axis": -1}),
                    ([T(dt.int8, (3,)), T(dt.int32, (0,))], {"axis": 0})]


def _scatter_slice():
    cases = [([T(d, (2, 3))], {"shape": (5, 6), "slices": ((1, 4, 2), (None, None, 2))}) for d in DTYPES]
    return cases + [([T(dt.float32, (5, 2))], {"shape": (5, 6), "slices": ((None, None, -1), (4, 0, -2))})]


def _scatter_add():
    cases = [([T(d, (4, 3)), T(dt.int32, (4,))], {"shape": (5, 3), "axis": 0}) for d in dt.NUMERIC]
    return cases + [([T(dt.float32, (3, 2, 2, 2)), T(dt.int64, (2, 2))], {"shape": (3, 4, 2), "axis": 1})]


def _iota():
    cases = [([], {"shape": (3, 4), "axis": 1, "dtype": d}) for d in DTYPES]
    return cases + [([], {"shape": (3, 4), "axis": 0, "dtype": dt.int64}), ([], {"shape": (5,), "axis": 0,
                                                                               "dtype": dt.float32})]


def _random():
    attrs = [{"shape": (3, 4), "dtype": d, "seed": 1, "seed2": 2} for d in dt.FLOATS]
    attrs += [{"shape": (), "dtype": dt.float32, "seed": -7, "seed2": 2**40},
              {"shape": (2, 0), "dtype": dt.float64, "seed": 0, "seed2": 0},
              {"shape": (64, 32), "dtype": dt.float64, "seed": 5, "seed2": 9}]
    return [([T(dt.int64, ())], a) for a in attrs]


CASES = {
    **{n: (lambda n=n: _elementwise(n)) for n, d in OPS.items() if d.category == "elementwise" and d.arity in (1, 2)
       and n not in ("cast", "broadcast_to")},
    "select": _select, "cast": _cast, "broadcast_to": _broadcast_to,
    **{n: (lambda n=n: _reduction(n)) for n in ("reduce_sum", "reduce_prod", "reduce_mean", "reduce_max",
                                                "reduce_min")},
    "argmax": _arg_reduction, "argmin": _arg_reduction, "matmul": _matmul, "matmul_add": _matmul_add,
    "transpose": lambda: [([T(d, (2, 3))], {"perm": (1, 0)}) for d in DTYPES]
    + [([T(dt.float32, (2, 3, 4))], {"perm": (2, 0, 1)}), ([T(dt.int32, ())], {"perm": ()})],
    "slice": _slice, "concat": _concat, "gather": _gather, "iota": _iota,
    "scatter_slice": _scatter_slice, "scatter_add": _scatter_add,
    "reshape": lambda: [([T(d, (3, 4))], {"shape": (2, -1)}) for d in (dt.float16, dt.bool_, dt.int64)]
    + [([T(dt.float32, ())], {"shape": (1, 1)}), ([T(dt.float32, (2, 3, 2))], {"shape": (12,)})],
    **{f"random_{k}": _random for k in ("uniform", "normal", "truncated_normal")},
    "copy_to_device": lambda: [([T(d, (2, 3))], {"device": "/device:CPU:0"}) for d in DTYPES],
}
COMPILED_OPS = sorted(n for n in OPS if n not in NOT_COMPILED and n != "fused")


def _inputs(name, types, attrs, rng):
    if name == "gather":
        n = types[0].shape[attrs["axis"] % len(types[0].shape)]
        return [random_array(rng, types[0]), rng.integers(0, n, size=types[1].shape).astype(types[1].dtype.np)]
    if name == "scatter_add":  # repeated indices must add up
        n = attrs["shape"][attrs["axis"] % len(attrs["shape"])]
        return [random_array(rng, types[0]), rng.integers(0, n, size=types[1].shape).astype(types[1].dtype.np)]
    if name.startswith("random_"):
        return [np.array(rng.integers(-2**62, 2**62), dtype=np.int64)]
    return [random_array(rng, t, name, i) for i, t in enumerate(types)]


def test_every_op_has_a_kernel_builder_and_cases():
    missing = [n for n in COMPILED_OPS if n not in BUILDERS or n not in CASES]
    assert not missing, f"ops without a CPU kernel or test cases: {missing}"
    assert "fused" in BUILDERS


@pytest.mark.parametrize("name", COMPILED_OPS)
def test_op_matches_interpreter(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    for types, attrs in CASES[name]():
        fn, op = one_op_function(name, types, attrs)
        # Data movement copies bits, random uniform is bit exact: no tolerance there.
        exact = OPS[name].category == "data-movement" or name == "random_uniform"
        check_compiled(op, fn, _inputs(name, types, attrs, rng), exact_floats=exact)


def test_gather_out_of_range_raises():
    _, op = one_op_function("gather", [T(dt.float32, (3, 4)), T(dt.int64, (3,))], {"axis": 0})
    kernel = compile_op(op)
    params = np.zeros((3, 4), np.float32)
    for bad in (7, 3, -1):
        with pytest.raises(IndexError, match=rf"gather index {bad} is out of range \[0, 3\)"):
            kernel(params, np.array([0, bad, 1]))


# ----------------------------------------------------------------------------- kernel cache


def _add_op(shape_a, shape_b, dtype=dt.float32):
    return one_op_function("add", [T(dtype, shape_a), T(dtype, shape_b)], {})


def _built() -> int:
    """Kernels compiled or loaded from the disk cache (a run over a kept cache directory loads them)."""
    return KERNEL_STATS["compiled"] + KERNEL_STATS["loaded"]


def test_new_batch_size_reuses_the_kernel():
    rng = np.random.default_rng(0)
    fn, op = _add_op((3, 4), (4,))
    check_compiled(op, fn, [random_array(rng, v.type) for v in op.operands])
    fn, op = one_op_function("reduce_sum", [T(dt.float32, (9, 4))], {"axes": (1,), "keepdims": False})
    compile_op(op)
    compiled, reused = KERNEL_STATS["compiled"], KERNEL_STATS["reused"]
    for batch in (7, 1, 0):
        fn, op = _add_op((batch, 4), (4,))
        check_compiled(op, fn, [random_array(rng, v.type) for v in op.operands])
    fn, op = one_op_function("reduce_sum", [T(dt.float32, (2, 4))], {"axes": (1,), "keepdims": False})
    check_compiled(op, fn, [random_array(rng, op.operands[0].type)])
    assert KERNEL_STATS["compiled"] == compiled
    assert KERNEL_STATS["reused"] == reused + 4


def test_broadcast_pattern_and_dtype_select_different_kernels():
    shapes = [((3, 4), (4,)), ((3, 4), (1, 4)), ((3, 4), (3, 1)), ((5, 4), (3, 5, 1))]
    assert len({compile_op(_add_op(a, b)[1]).source for a, b in shapes}) == len(shapes)
    compile_op(_add_op((2, 1, 3), (1, 4, 1))[1])
    built = _built()
    compile_op(_add_op((2, 1, 3), (1, 4, 1), dt.int8)[1])
    assert _built() == built + 1


# ----------------------------------------------------------------------------- fused regions


def fused_function(arg_types, body):
    """A function holding one ``fused`` op whose region is ``body(builder, args) -> yielded values``."""
    inner = Builder(arg_types)
    results = body(inner, inner.args)
    inner.block.ops.append(Op("yield", results, {}, ()))
    outer = Builder(arg_types)
    op = Op("fused", outer.args, {}, [v.type for v in results], regions=[inner.block])
    outer.block.ops.append(op)
    return outer.finish(list(op.results)), op


def _gelu_body(b, args):
    x, bias, scale = args

    def c(v):
        return b.constant(np.float32(v))

    y = b.op("add", x, bias)
    y3 = b.op("mul", b.op("mul", y, y), y)
    t = b.op("tanh", b.op("mul", c(0.7978845608), b.op("add", y, b.op("mul", c(0.044715), y3))))
    g = b.op("mul", b.op("mul", c(0.5), y), b.op("add", c(1.0), t))
    g = b.op("mul", g, b.op("cast", scale, dtype=dt.float32))
    relu = b.op("select", b.op("greater", g, c(0.0)), g, b.op("broadcast_to", c(0.0), shape=(3, 4)))
    return [g, b.op("cast", g, dtype=dt.float16), relu, b.op("broadcast_to", bias, shape=(2, 3, 4))]


def test_fused_gelu_chain_is_one_kernel_and_matches():
    types = [T(dt.float32, (3, 4)), T(dt.float32, (4,)), T(dt.float16, ())]
    fn, op = fused_function(types, _gelu_body)
    built = _built()
    rng = np.random.default_rng(1)
    check_compiled(op, fn, [random_array(rng, t) for t in types])
    assert _built() == built + 1
    source = compile_op(op).source
    assert source.count("for ") == 3 and "np.empty" not in source  # one loop nest, no temporaries


def test_fused_outputs_of_different_shapes_and_pass_through():
    types = [T(dt.float64, (3, 4)), T(dt.float64, (4,))]
    fn, op = fused_function(types, lambda b, a: [b.op("neg", a[1]), b.op("sub", a[0], a[1]), a[0]])
    rng = np.random.default_rng(2)
    check_compiled(op, fn, [random_array(rng, t) for t in types])


def test_fused_integer_intermediates_wrap_per_op():
    types = [T(dt.int8, (5, 6)), T(dt.int8, (6,)), T(dt.int8, (5, 1))]

    def body(b, a):
        t = b.op("mul", b.op("add", a[0], a[1]), a[2])
        return [b.op("floor_div", t, a[1]), b.op("floor_mod", t, a[2]), b.op("pow", a[2], b.op("neg", a[2]))]

    fn, op = fused_function(types, body)
    check_compiled(op, fn, [random_array(np.random.default_rng(3), t) for t in types])


def test_fused_float16_chain_rounds_like_the_reference():
    types = [T(dt.float16, (4, 5)), T(dt.float16, (5,))]

    def body(b, a):
        s = b.op("sigmoid", b.op("mul", a[0], a[1]))
        return [b.op("sub", b.op("exp", b.op("neg", s)), a[1]), b.op("maximum", s, a[0])]

    fn, op = fused_function(types, body)
    check_compiled(op, fn, [random_array(np.random.default_rng(4), t) for t in types])


@pytest.mark.parametrize("src", DTYPES, ids=lambda d: d.name)
def test_cast_matrix_fused(src):
    fn, op = fused_function([T(src, (40,))], lambda b, a: [b.op("cast", a[0], dtype=d) for d in DTYPES])
    rng = np.random.default_rng(5)
    x = random_array(rng, T(src, (40,)))
    if src.is_floating:  # out-of-range values and NaN follow numpy's x86 conversions
        with np.errstate(over="ignore"):
            x[:6] = np.array([1e10, -3e9, 300.7, -200.2, 70000.0, np.nan]).astype(src.np)
    check_compiled(op, fn, [x])


# ----------------------------------------------------------------------------- properties


@settings(max_examples=20, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3), seed=st.integers(0, 99))
def test_select_broadcasts_any_shapes(shapes, seed):
    rng = np.random.default_rng(seed)
    types = [T(dt.bool_, shapes.input_shapes[0]), T(dt.float32, shapes.input_shapes[1]),
             T(dt.float32, shapes.input_shapes[2])]
    fn, op = one_op_function("select", types, {})
    check_compiled(op, fn, [random_array(rng, t) for t in types])


@settings(max_examples=20, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), data=st.data())
def test_reductions_over_any_axes(shape, data):
    axes = tuple(data.draw(st.sets(st.integers(0, len(shape) - 1))) if shape else ())
    name = data.draw(st.sampled_from(["reduce_sum", "reduce_max", "reduce_mean"]))
    attrs = {"axes": axes, "keepdims": data.draw(st.booleans())}
    types = [T(dt.float64, shape)]
    fn, op = one_op_function(name, types, attrs)
    check_compiled(op, fn, [random_array(np.random.default_rng(len(shape)), types[0])])


@pytest.mark.parametrize("name", ["reduce_max", "reduce_sum"])
@pytest.mark.parametrize("shape, axes", [((2, 0, 1), (1, 2)), ((3, 0, 1, 1), (1, 2, 3)), ((2, 1, 0), (1, 2))])
def test_keepdims_reduction_over_an_empty_domain_stores_every_row(name, shape, axes):
    # the store after the reduction loops indexes a size-1 reduced dim at 0, never with the loop
    # index (unset when the loops run zero times: the store went to a garbage address)
    fn, op = one_op_function(name, [T(dt.float64, shape)], {"axes": axes, "keepdims": True})
    check_compiled(op, fn, [np.empty(shape)], exact_floats=True)


@settings(max_examples=15, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=5), data=st.data())
def test_slices_of_any_start_stop_step(shape, data):
    bound = st.one_of(st.none(), st.integers(-7, 7))
    slices = tuple((data.draw(bound), data.draw(bound), data.draw(st.sampled_from([None, 1, 2, -1, -3])))
                   for _ in shape)
    types = [T(dt.int16, shape)]
    fn, op = one_op_function("slice", types, {"slices": slices})
    check_compiled(op, fn, [random_array(np.random.default_rng(0), types[0])])


# ----------------------------------------------------------------------------- details


def test_float16_conversions_match_numpy_exactly():
    halves = np.arange(2**16, dtype=np.uint16)
    as_f32 = _convert(helpers.f16_to_f32, halves, np.float32)
    want = halves.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(as_f32, want)
    rng = np.random.default_rng(6)
    wide = rng.standard_normal(20000) * np.exp(rng.uniform(-25, 13, 20000))
    finite = want[np.isfinite(want)].astype(np.float64)
    ties = (finite[:-1] + finite[1:]) / 2  # halfway points (and sign-crossing averages): ties to even
    for x in (wide, ties, wide.astype(np.float32), want[~np.isnan(want)]):
        with np.errstate(over="ignore"):
            expected = x.astype(np.float16).view(np.uint16)
        np.testing.assert_array_equal(_convert(helpers.f32_to_f16, x, np.uint16), expected)


@numba.njit
def _map(fn, x, out):
    for i in range(x.size):
        out[i] = fn(x[i])


def _convert(fn, x, dtype):
    out = np.empty(x.size, dtype)
    _map(fn, x, out)
    return out


def test_reshape_is_a_view():
    _, op = one_op_function("reshape", [T(dt.float32, (3, 4))], {"shape": (2, -1)})
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    (y,) = compile_op(op)(x)
    assert y.shape == (2, 6) and np.shares_memory(x, y)


def test_compile_op_refuses_what_it_does_not_compile():
    _, op = one_op_function("constant", [], {"value": np.float32(1.0)})
    with pytest.raises(ValueError, match="runtime"):
        compile_op(op)
    _, op = one_op_function("neg", [TensorType(dt.float32, (None, 3))], {})
    with pytest.raises(ValueError, match="non-static"):
        compile_op(op)
    _, op = fused_function([T(dt.float32, (3, 4)), T(dt.float32, (4, 4))],
                           lambda b, a: [b.op("matmul", a[0], a[1], transpose_a=False, transpose_b=False)])
    with pytest.raises(NotImplementedError, match="matmul"):
        compile_op(op)


def _edge_values(d: dt.DType) -> np.ndarray:
    if d.is_floating:
        return SPECIALS.astype(d.np)
    info = np.iinfo(d.np)
    values = [info.min, info.min + 1, -3, -2, -1, 0, 1, 2, 3, info.max - 1, info.max]
    return np.array([v for v in values if info.min <= v <= info.max], d.np)


@pytest.mark.parametrize("d", [d for d in DTYPES if d.is_numeric], ids=lambda d: d.name)
def test_elementwise_ops_on_every_pair_of_edge_values(d):
    def names(arity):
        return [n for n, o in OPS.items() if o.category == "elementwise" and o.arity == arity and not o.attrs
                and accepts(n, [T(d, ())] * arity)]

    x = _edge_values(d)
    types = [T(d, (x.size, 1)), T(d, (x.size,))]
    fn, op = fused_function(types, lambda b, a: [b.op(n, a[0], a[1]) for n in names(2)]
                            + [b.op(n, a[1]) for n in names(1)])
    check_compiled(op, fn, [x.reshape(-1, 1), x])


def test_read_only_and_strided_inputs_need_no_new_compilation():
    _, op = _add_op((3, 4), (4,))
    kernel = compile_op(op)
    a = np.arange(24, dtype=np.float32).reshape(3, 8)[:, ::2]  # strided: copied, not recompiled
    b = np.arange(4, dtype=np.float32)
    b.flags.writeable = False
    (got,) = kernel(a, b)
    np.testing.assert_array_equal(got, a + b)
    with pytest.raises(TypeError, match="do not match"):
        kernel(a.astype(np.float64), b)


def test_matmul_add_without_blas_entry_or_with_strided_operands():
    # The path taken when numpy's BLAS has no cblas gemm we can find, or an operand is a view.
    rng = np.random.default_rng(2)
    types = [T(dt.float32, (4, 3)), T(dt.float32, (4, 5)), T(dt.float32, (3, 5))]
    _, op = one_op_function("matmul_add", types, {"transpose_a": True, "transpose_b": False, "alpha": -0.5})
    kernel = compile_op(op)
    a, b, c = (rng.standard_normal(t.shape).astype(np.float32) for t in types)
    want = (c - 0.5 * (a.T.astype(np.float64) @ b)).astype(np.float32)
    np.testing.assert_allclose(kernel(a, b, c)[0], want, rtol=1e-5, atol=1e-6)
    wide = rng.standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_allclose(kernel(a, wide[:, ::2], c)[0], (c - 0.5 * (a.T @ wide[:, ::2])), rtol=1e-5, atol=1e-6)
    kernel._gemm = None
    out = c.copy()
    assert kernel(a, b, out, out=(out,))[0] is out
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
