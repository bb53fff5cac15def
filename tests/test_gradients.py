"""Derivatives: every differentiable op checked against finite differences, from one spec table.

The table (`SPECS`, like JAX's ``lax_autodiff_test``) gives each op of the op
table that has a derivative its cases and a sampler that keeps it smooth;
`gradcheck.check_case` checks reverse and forward mode on the interpreter. The
other tests prove: the table covers the op table; compiled gradients match the
interpreter; Hessian-vector products agree in both compositions; ties and zeros
follow TF; and the public ``tf.gradients``/``tf.stop_gradient``/``tf.jvp`` API.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from gradcheck import (
    Spec,
    away_from_zero,
    case,
    check_case,
    distinct,
    expand,
    forward_module,
    gradient_module,
    jvp_module,
    per_operand,
    rng_for,
    sample_inputs,
    uniform,
    weighted_sum,
)

import fuseflow as tf
from fuseflow.ir import dtypes as dt
from fuseflow.ir import interp
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Module
from fuseflow.ir.opdefs import OPS
from fuseflow.ir.types import TensorType
from fuseflow.passes.derivatives import JVP, NOT_DIFFERENTIABLE, VJP

F64 = dt.float64
UNARY = [(), (3, 4), (2, 1, 3)]
BINARY = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()), ((2, 1, 3), (4, 1))]
_CONSTS = np.random.default_rng(0)


def unary(*shapes):
    return [case(s) for s in shapes or UNARY]


def binary():
    return [case(a, b) for a, b in BINARY]


def mask(*shape):
    """A fixed boolean condition with both values present."""
    m = _CONSTS.random(shape) < 0.5
    m.flat[0], m.flat[-1] = True, False
    return m


def idx(values, dtype=np.int32):
    return np.array(values, dtype)


def apart(gap):
    """`valid` for maximum/minimum: the two operands differ by more than `gap` everywhere."""
    return lambda x, y: bool(np.all(np.abs(np.subtract(x, y)) > gap))


def floor_mod_smooth(x, y):
    frac = np.mod(np.divide(x, y), 1.0)
    return bool(np.all((frac > 0.02) & (frac < 0.98)))


def cast_round_trip(b, x):
    return b.op("cast", b.op("cast", x, dtype=dt.float32), dtype=F64)


REDUCTIONS = [
    case((3, 4), axes=(0,), keepdims=False),
    case((3, 4), axes=(1,), keepdims=True),
    case((3, 4), axes=(0, 1), keepdims=False),
    case((2, 3, 4), axes=(0, 2), keepdims=False),
    case((2, 3, 4), axes=(-1,), keepdims=True),
    case((2, 3), axes=(), keepdims=False),
    case((), axes=(0,), keepdims=False),
]

PROD_ZEROS = [
    case((4,), axes=(0,), keepdims=False, values=[[1.5, 0.0, -2.0, 0.7]], label="one-zero"),
    case((4,), axes=(0,), keepdims=False, values=[[1.5, 0.0, -2.0, 0.0]], label="two-zeros"),
    case((4, 3), axes=(1,), keepdims=True, label="rows-with-0-1-2-3-zeros",
         values=[[[1.5, -0.5, 2.0], [0.0, 1.2, -0.8], [0.0, 0.0, 1.3], [0.0, 0.0, 0.0]]]),
    case((3, 2), axes=(0, 1), keepdims=False, values=[[[1.5, -0.5], [0.0, 1.2], [0.9, -0.8]]], label="all-axes"),
]


def matmul_cases():
    out = []
    shapes = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (4, 4, 5))]
    for (a, b), (ta, tb) in itertools.product(shapes, itertools.product((False, True), repeat=2)):
        a = a[:-2] + a[-2:][::-1] if ta else a
        b = b[:-2] + b[-2:][::-1] if tb else b
        out.append(case(a, b, transpose_a=ta, transpose_b=tb))
    return out


def matmul_add_cases():
    out = []
    for ta, tb in itertools.product((False, True), repeat=2):
        out.append(case((4, 3) if ta else (3, 4), (5, 4) if tb else (4, 5), (3, 5),
                        transpose_a=ta, transpose_b=tb, alpha=-0.7))
    return out


# The reference of scatter_add (`fuseflow.ir.opdefs_data._scatter_add_ref`) mishandles a negative axis that
# its type rule accepts: it reshapes the updates to ``shape[:axis] + (n,) + shape[axis + 1:]`` without
# normalising the axis. Repro: `interp.run` of ``scatter_add(u: f64[2,3,3], i: i32[3]) {axis = -1, shape =
# [2, 3, 4]}`` raises "cannot reshape array of size 18 into shape (2,3,3,2,3,4)". The gather VJP emits
# such a scatter_add for a gather with a negative axis. (The frontend normalises axes, and the compiled
# kernel normalises too; only IR written with a negative axis reaches it.)

SPECS = [
    Spec("neg", unary()),
    Spec("abs", unary(), sample=away_from_zero()),
    Spec("reciprocal", unary(), sample=away_from_zero(0.5, 2.0)),
    Spec("sqrt", unary(), sample=uniform(0.3, 2.0)),
    Spec("rsqrt", unary(), sample=uniform(0.3, 2.0)),
    Spec("exp", unary()),
    Spec("log", unary(), sample=uniform(0.3, 2.0)),
    Spec("log1p", unary(), sample=uniform(-0.5, 2.0)),
    Spec("tanh", unary()),
    Spec("sigmoid", unary(), sample=uniform(-4.0, 4.0)),
    Spec("sin", unary(), sample=uniform(-4.0, 4.0)),
    Spec("cos", unary(), sample=uniform(-4.0, 4.0)),
    Spec("add", binary()),
    Spec("sub", binary()),
    Spec("mul", binary()),
    Spec("div", binary(), sample=per_operand(uniform(), away_from_zero(0.5, 2.0))),
    Spec("floor_mod", binary(), sample=per_operand(uniform(-3.0, 3.0), away_from_zero(0.5, 2.0)),
         valid=floor_mod_smooth),
    Spec("pow", binary(), sample=per_operand(uniform(0.3, 2.0), uniform(-2.0, 2.0))),
    # A constant integer exponent allows a negative base; a constant base differentiates the exponent alone.
    Spec("pow", [case((3, 4), np.array(3.0)), case((2, 3), np.array(-2.0)), case((4,), np.array(0.0))],
         sample=away_from_zero(0.5, 2.0)),
    Spec("pow", [case(np.array(2.5), (3, 4)), case(np.array([0.5, 3.0, 1.5]), (2, 3))]),
    Spec("maximum", binary(), valid=apart(0.05)),
    Spec("minimum", binary(), valid=apart(0.05)),
    Spec("select", [case(mask(3, 4), (3, 4), (3, 4)), case(mask(3, 1), (4,), (3, 4)),
                    case(mask(3, 4), (), (1, 4)), case(mask(2, 3), np.full((2, 3), 7.0), (3,)),
                    case(np.array(True), (2, 3), (2, 3))]),
    Spec("cast", [case((3, 4)), case(())], build=cast_round_trip, eps=1e-2, rtol=1e-4, atol=1e-4,
         modes_rtol=1e-6),
    Spec("reduce_sum", REDUCTIONS),
    Spec("reduce_mean", REDUCTIONS),
    Spec("reduce_prod", REDUCTIONS + PROD_ZEROS, sample=uniform(-1.5, 1.5)),
    Spec("reduce_max", REDUCTIONS, sample=distinct),
    Spec("reduce_min", REDUCTIONS, sample=distinct),
    Spec("matmul", matmul_cases()),
    Spec("matmul_add", matmul_add_cases()),
    Spec("reshape", [case((3, 4), shape=(2, 6)), case((2, 3, 4), shape=(4, -1)), case((), shape=(1, 1)),
                     case((6,), shape=(2, 3))]),
    Spec("copy_to_device", [case((3, 4), device="/device:CPU:0"), case((), device="/device:GPU:0")]),
    Spec("transpose", [case((3, 4), perm=(1, 0)), case((2, 3, 4), perm=(2, 0, 1)), case((2, 3, 4), perm=(0, 2, 1))]),
    Spec("broadcast_to", [case((3, 1), shape=(2, 3, 4)), case((), shape=(2, 3)), case((4,), shape=(3, 4)),
                          case((1, 4), shape=(1, 4))]),
    Spec("slice", [case((5, 6), slices=((None, None, -1), (1, 5, 2)), label="reversed-rows,strided-cols"),
                   case((5, 6), slices=((-1, 0, -2), (None, None, None)), label="negative-start-and-step"),
                   case((4,), slices=((3, None, -1),), label="reverse-1d"),
                   case((2, 3, 4), slices=((1, 2, 1), (None, None, -2), (-3, None, 1)), label="rank-3"),
                   case((5,), slices=((3, 1, 1),), label="empty")]),
    Spec("scatter_slice", [case((3, 3), shape=(5, 6), slices=((None, None, -2), (1, None, 2)), label="2d"),
                           case((2,), shape=(5,), slices=((4, 0, -3),), label="1d-negative-step")]),
    Spec("concat", [case((2, 3), (4, 3), axis=0), case((2, 3), (2, 1), (2, 2), axis=-1),
                    case((2, 3), np.ones((2, 2)), axis=1), case((3,), (2,), axis=0)]),
    Spec("gather", [case((5, 3), idx([0, 2, 2, 4, 2]), axis=0, label="repeated-rows"),
                    case((3, 5), idx([[1, 1], [0, 4]], np.int64), axis=1, label="2d-indices-axis-1"),
                    case((2, 3, 4), idx([3, 3, 0]), axis=-1, label="negative-axis"),
                    case((4,), idx(2), axis=0, label="scalar-index")]),
    Spec("scatter_add", [case((5, 3), idx([0, 2, 2, 4, 2]), shape=(6, 3), axis=0, label="repeated-rows"),
                         case((3, 2, 2), idx([[1, 1], [0, 4]], np.int64), shape=(3, 5), axis=1,
                              label="2d-indices-axis-1"),
                         case((2, 3, 3), idx([3, 3, 0]), shape=(2, 3, 4), axis=-1, label="negative-axis")]),
]

PARAMS = [p for spec in SPECS for p in spec.params()]
DIFFERENTIABLE = sorted(n for n, d in OPS.items()
                        if n not in NOT_DIFFERENTIABLE and d.category not in ("control", "opaque"))


# ----------------------------------------------------------------------------- the table covers the op table


def test_every_differentiable_op_has_rules_and_a_spec():
    without_rule = [n for n in DIFFERENTIABLE if n not in VJP or n not in JVP]
    without_spec = sorted(set(DIFFERENTIABLE) - {s.op for s in SPECS})
    assert not without_rule, f"differentiable ops without a VJP/JVP rule: {without_rule}"
    assert not without_spec, f"differentiable ops without a gradient-check spec: {without_spec}"


def test_table_names_only_known_ops():
    assert not NOT_DIFFERENTIABLE - set(OPS), "NOT_DIFFERENTIABLE names unknown ops"
    assert {s.op for s in SPECS} <= set(DIFFERENTIABLE), "a spec names an op without a derivative"
    assert not (set(VJP) | set(JVP)) - set(OPS), "a rule names an unknown op"


# ----------------------------------------------------------------------------- every op against finite differences


@pytest.mark.parametrize("spec, c", [
    pytest.param(s, c, id=key, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
    for s, c, key in PARAMS])
def test_derivatives_match_finite_differences(spec, c):
    check_case(spec, c)


@pytest.mark.parametrize("op", ["reduce_max", "reduce_min"])
def test_extreme_ties_share_the_cotangent_equally(op):
    sign = 1.0 if op == "reduce_max" else -1.0
    x = sign * np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, -1.0], [0.0, 1.0, 2.0, 3.0]])
    w = np.array([0.6, -1.2, 2.0])
    spec = Spec(op, [])
    c = case((3, 4), axes=(1,), keepdims=False)
    (_, g) = interp.run(expand(gradient_module(spec, c, w)), x)
    np.testing.assert_allclose(g, [[0, 0.3, 0.3, 0], [-0.4, -0.4, -0.4, 0], [0, 0, 0, 2.0]], rtol=1e-15)
    t = np.arange(12.0).reshape(3, 4)
    (_, jt) = interp.run(expand(jvp_module(spec, c)), x, t)
    np.testing.assert_allclose(jt, [1.5, 5.0, 11.0], rtol=1e-15)  # the mean of the tied tangents


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_binary_extreme_tie_gives_the_cotangent_to_the_first_operand(op):
    spec, c = Spec(op, []), case((3,), (3,))
    w = np.array([1.0, 2.0, 3.0])
    _, gx, gy = interp.run(expand(gradient_module(spec, c, w)), np.array([1.0, 2.0, 0.0]), np.array([1.0, 0.0, 2.0]))
    first = [1.0, 2.0, 0.0] if op == "maximum" else [1.0, 0.0, 3.0]
    np.testing.assert_array_equal(gx, first)
    np.testing.assert_array_equal(gy, w - first)


# ----------------------------------------------------------------------------- compiled path


COMPILED = ["tanh[(3,4)]", "pow[(3,4)&(4,)]", "reduce_max[(3,4)&axes=(1,)&keepdims=True]",
            "matmul[(2,1,4,3)&(4,5,4)&transpose_a=True&transpose_b=True]", "gather[repeated-rows]",
            "slice[reversed-rows,strided-cols]"]


@pytest.mark.parametrize("key", COMPILED)
def test_compiled_gradients_match_the_interpreter(key):
    from fuseflow.passes.manager import PassManager
    from fuseflow.runtime.executable import Executable

    spec, c = next((s, c) for s, c, k in PARAMS if k == key)
    rng = rng_for("compiled/" + key)
    xs = sample_inputs(spec, c, rng)
    for module, args in _derivative_modules(spec, c, xs, rng):
        want = interp.run(expand(module), *args)
        got = Executable(PassManager(verify=True).run(module).main).run(list(args))
        assert len(got) == len(want)
        for g, e in zip(got, want):
            assert np.asarray(g).shape == e.shape
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def _derivative_modules(spec, c, xs, rng):
    """The gradient and JVP modules of a case (before autodiff) with their arguments."""
    w = rng.normal(size=forward_module(spec, c).main.results[0].type.shape)
    ts = [rng.normal(size=x.shape) for x in xs]
    return [(gradient_module(spec, c, w), xs), (jvp_module(spec, c), xs + ts)]


# ----------------------------------------------------------------------------- higher order


def _hvp_function(mode: str, n: int, W: np.ndarray) -> Module:
    """``f(x) = sum(tanh(x) * x**3) + sum(exp(W @ x))``; returns (grad f, H v) with H v by `mode`."""
    b = Builder([TensorType(F64, (n, 1)), TensorType(F64, (n, 1))])
    x, v = b.args
    cube = b.op("pow", x, b.constant(np.array(3.0)))
    first = b.op("reduce_sum", b.op("mul", b.op("tanh", x), cube), axes=(0, 1), keepdims=False)
    second = b.op("reduce_sum", b.op("exp", b.op("matmul", b.constant(W), x, transpose_a=False, transpose_b=False)),
                  axes=(0, 1), keepdims=False)
    f = b.op("add", first, second)
    g = b.op("gradients", f, x, num_ys=1, num_xs=1)
    if mode == "reverse-over-reverse":
        hv = b.op("gradients", weighted_sum(b, g, v), x, num_ys=1, num_xs=1)
    else:
        hv = b.op("jvp", g, x, v, num_ys=1, num_xs=1)
    return expand(Module([b.finish([g, hv])]))


def test_hessian_vector_products_agree():
    rng = rng_for("hvp")
    n = 4
    W = rng.normal(scale=0.5, size=(3, n))
    x, v = rng.uniform(-1.5, 1.5, (n, 1)), rng.normal(size=(n, 1))
    g_rr, hv_rr = interp.run(_hvp_function("reverse-over-reverse", n, W), x, v)
    g_fr, hv_fr = interp.run(_hvp_function("forward-over-reverse", n, W), x, v)
    np.testing.assert_allclose(g_rr, g_fr, rtol=1e-14)
    np.testing.assert_allclose(hv_rr, hv_fr, rtol=1e-12, atol=1e-13)
    # Finite differences of the gradient along v, and the analytic Hessian.
    grad = _hvp_function("forward-over-reverse", n, W)
    eps = 1e-6
    fd = (interp.run(grad, x + eps * v, v)[0] - interp.run(grad, x - eps * v, v)[0]) / (2 * eps)
    np.testing.assert_allclose(hv_rr, fd, rtol=1e-6, atol=1e-8)
    t = np.tanh(x)
    dt1, dt2 = 1 - t**2, -2 * t * (1 - t**2)
    diag = dt2 * x**3 + 2 * dt1 * 3 * x**2 + t * 6 * x
    H = np.diagflat(diag) + W.T @ np.diagflat(np.exp(W @ x)) @ W
    np.testing.assert_allclose(hv_rr, H @ v, rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------------- the public API


def _run(fetches, feeds=None):
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(fetches, feeds)


def test_gradients_of_several_ys_add_up():
    x = tf.placeholder(tf.float64, shape=[3])
    y1, y2 = tf.reduce_sum(x * x), tf.reduce_sum(tf.sin(x))
    (g,) = tf.gradients([y1, y2], [x])
    xv = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(_run(g, {x: xv}), 2 * xv + np.cos(xv), rtol=1e-12)


def test_grad_ys_weight_the_ys():
    x = tf.placeholder(tf.float64, shape=[3])
    y = x * x
    (g,) = tf.gradients(y, x, grad_ys=tf.constant([1.0, -2.0, 0.5], dtype=tf.float64))
    xv = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(_run(g, {x: xv}), 2 * xv * [1.0, -2.0, 0.5], rtol=1e-12)


def test_unrelated_and_integer_xs_get_none():
    x = tf.placeholder(tf.float32, shape=[2])
    other = tf.placeholder(tf.float32, shape=[2])
    n = tf.placeholder(tf.int32, shape=[2])
    y = tf.reduce_sum(x * tf.cast(n, tf.float32))
    gx, gother, gn = tf.gradients(y, [x, other, n])
    assert gother is None and gn is None
    np.testing.assert_allclose(_run(gx, {x: [1.0, 2.0], n: [3, 4]}), [3.0, 4.0])


def test_gradient_of_a_tensor_itself_is_ones_and_intermediates_are_xs():
    x = tf.placeholder(tf.float64, shape=[2])
    h = tf.sin(x)
    (gx,) = tf.gradients(x, x)
    (gh,) = tf.gradients(h * h, h)
    xv = np.array([0.4, -1.3])
    gx_v, gh_v = _run([gx, gh], {x: xv})
    np.testing.assert_array_equal(gx_v, [1.0, 1.0])
    np.testing.assert_allclose(gh_v, 2 * np.sin(xv), rtol=1e-12)


def test_x_reached_only_through_non_differentiable_ops_gets_none():
    x = tf.placeholder(tf.float32, shape=[2])
    assert tf.gradients(tf.floor(x), x) == [None]
    assert tf.gradients(tf.cast(tf.cast(x, tf.int32), tf.float32), x) == [None]


def test_stop_gradient_blocks_its_path():
    x = tf.placeholder(tf.float64, shape=[2])
    assert tf.gradients(tf.reduce_sum(tf.stop_gradient(x) * 3.0), x) == [None]
    # Another path still carries a derivative: d/dx (sg(x) * x) = sg(x).
    (g,) = tf.gradients(tf.reduce_sum(tf.stop_gradient(x) * x), x)
    xv = np.array([1.5, -2.0])
    np.testing.assert_allclose(_run(g, {x: xv}), xv, rtol=1e-12)


def test_gradients_with_respect_to_variables():
    W = tf.Variable(np.array([[1.0, 2.0], [3.0, 4.0]]), dtype=tf.float64)
    b = tf.Variable(np.array([0.5, -0.5]), dtype=tf.float64)
    x = tf.constant(np.array([[1.0, -1.0]]))
    loss = tf.reduce_sum(tf.tanh(tf.matmul(x, W) + b))
    gW, gb = tf.gradients(loss, [W, b])
    gW_v, gb_v = _run([gW, gb])
    d = 1 - np.tanh(np.array([[1.0, -1.0]]) @ [[1.0, 2.0], [3.0, 4.0]] + [0.5, -0.5]) ** 2
    np.testing.assert_allclose(gb_v, d[0], rtol=1e-12)
    np.testing.assert_allclose(gW_v, np.array([[1.0], [-1.0]]) @ d, rtol=1e-12)


def test_second_derivative_by_nested_gradients():
    x = tf.placeholder(tf.float64, shape=[3])
    y = tf.reduce_sum(tf.sin(x) * x)
    (dy,) = tf.gradients(y, x)
    (d2y,) = tf.gradients(dy, x)
    xv = np.array([0.3, -1.1, 2.0])
    np.testing.assert_allclose(_run(d2y, {x: xv}), 2 * np.cos(xv) - xv * np.sin(xv), rtol=1e-12)


def test_jvp_matches_finite_differences():
    x = tf.placeholder(tf.float64, shape=[2, 3])
    t = tf.placeholder(tf.float64, shape=[2, 3])
    y = tf.reduce_sum(tf.exp(x) * tf.sin(x), axis=1)
    jt = tf.jvp(y, x, t)
    rng = rng_for("api-jvp")
    xv, tv = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))

    def f(a):
        return np.sum(np.exp(a) * np.sin(a), axis=1)

    eps = 1e-6
    np.testing.assert_allclose(_run(jt, {x: xv, t: tv}), (f(xv + eps * tv) - f(xv - eps * tv)) / (2 * eps),
                               rtol=1e-6, atol=1e-9)


CLI_MODEL = '''
import fuseflow as tf

def model():
    x = tf.placeholder(tf.float32, shape=[4], name="x")
    return tf.gradients(tf.reduce_sum(tf.tanh(x) * x), x)[0]
'''


def test_cli_shows_the_request_before_autodiff_and_none_after(tmp_path, capsys):
    from fuseflow.cli import main

    path = tmp_path / "model.py"
    path.write_text(CLI_MODEL)
    assert main(["ir", f"{path}:model", "--before", "autodiff"]) == 0
    before = capsys.readouterr().out
    assert " = gradients " in before
    assert main(["ir", f"{path}:model", "--after", "autodiff"]) == 0
    after = capsys.readouterr().out
    assert " = gradients " not in after and " = tanh " in after

