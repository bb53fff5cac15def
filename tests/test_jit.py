"""@fuseflow.jit: retrace rules, numpy-written functions, outputs, errors at the user's line."""

import collections
import inspect
import re

import numpy as np
import pytest

import fuseflow
from fuseflow.codegen.source import KERNEL_STATS
from fuseflow.frontend.numpy_api import UnsupportedNumpyError
from fuseflow.ir.parser import parse_type

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def mlp_forward(x, W1, b1, W2, b2):
    h = np.maximum(x @ W1 + b1, 0.0)
    return softmax(h @ W2 + b2)


def polynomial(t, v0, g):
    """Height of a body under drag as a 30-term power series in time (a physics formula's Taylor form)."""
    total = v0 * t - 0.5 * g * t**2
    for k in range(3, 31):
        total = total + ((-0.1) ** k / np.prod(np.arange(1.0, k + 1))) * v0 * t**k
    return total


# ----------------------------------------------------------------------------- numpy-written functions

@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_gelu_matches_numpy(dtype, rtol):
    x = rand(1000, dtype=dtype)
    got = fuseflow.jit(gelu)(x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, gelu(x), rtol=rtol, atol=rtol)


def test_softmax_matches_numpy():
    x = rand(33, 17) * 10
    np.testing.assert_allclose(fuseflow.jit(softmax)(x), softmax(x), rtol=2e-6, atol=1e-7)


def test_mlp_forward_matches_numpy():
    args = [rand(16, 8), rand(8, 32), rand(32), rand(32, 10), rand(10)]
    got = fuseflow.jit(mlp_forward)(*args)
    np.testing.assert_allclose(got, mlp_forward(*args), rtol=1e-5, atol=1e-6)


def test_polynomial_physics_formula_matches_numpy():
    t = np.linspace(0.0, 3.0, 101)
    got = fuseflow.jit(polynomial)(t, 12.5, 9.81)
    np.testing.assert_allclose(got, polynomial(t, 12.5, 9.81), rtol=1e-12, atol=1e-12)


def test_numpy_functions_and_methods():
    def f(x, y):
        return {
            "where": np.where(x > 0, x, y),
            "clip": np.clip(x, -0.5, 0.5),
            "mean": np.mean(x, axis=0),
            "sum": x.sum(axis=1, keepdims=True),
            "max": x.max(),
            "argmax": np.argmax(x, axis=1),
            "T": x.T @ y,
            "reshape": x.reshape(-1),
            "astype": (x > 0).astype(np.float32),
            "concat": np.concatenate([x, y], axis=1),
            "dot": np.dot(x[0], y[0]),
        }

    x, y = rand(4, 3), rand(4, 3)
    got, want = fuseflow.jit(f)(x, y), f(x, y)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6, err_msg=k)
        assert np.asarray(got[k]).dtype == np.asarray(want[k]).dtype, k


def test_numpy_dtype_rules():
    f = fuseflow.jit(lambda i, j: (i / j, np.exp(i), np.sum(i), i * 2.5))
    i, j = np.arange(1, 5, dtype=np.int32), np.full(4, 2, np.int32)
    for got, want in zip(f(i, j), (i / j, np.exp(i), np.sum(i), i * 2.5)):
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_python_numbers_are_weak_numpy_values_are_not():
    f = fuseflow.jit(lambda x, s: x * s)
    assert f(rand(3), 2.0).dtype == np.float32
    assert f(np.arange(3, dtype=np.int32), 2).dtype == np.int32
    assert f(np.arange(3, dtype=np.int32), 2.5).dtype == np.float64
    assert fuseflow.jit(lambda x: x * 2.0)(rand(3)).dtype == np.float32
    assert fuseflow.jit(lambda x: x * np.float64(2.0))(rand(3)).dtype == np.float64


def test_tf1_graphs_keep_tf_rules_for_numpy_operands():
    x = fuseflow.placeholder(fuseflow.float32, [3])
    y = np.ones(3) - x  # reaches Tensor.__array_ufunc__ through numpy; TF1 gives the tensor's dtype
    assert y.dtype == fuseflow.float32
    with fuseflow.Session() as sess:
        np.testing.assert_allclose(sess.run(y, {x: np.arange(3)}), [1, 0, -1])


# ----------------------------------------------------------------------------- outputs

def test_output_structures():
    Pair = collections.namedtuple("Pair", "a b")

    def f(x):
        return [x + 1, (x * 2, {"neg": -x}), Pair(x, 3.0), None]

    x = rand(5)
    out = fuseflow.jit(f)(x)
    assert isinstance(out, list) and isinstance(out[1], tuple) and isinstance(out[2], Pair)
    np.testing.assert_allclose(out[1][1]["neg"], -x)
    assert out[2].b == 3.0 and out[3] is None


def test_scalar_results_are_numpy_scalars():
    assert isinstance(fuseflow.jit(np.sum)(rand(4)), np.float32)


# ----------------------------------------------------------------------------- retrace rules

def test_same_signature_compiles_nothing_new_batch_size_compiles_no_kernel():
    f = fuseflow.jit(gelu)
    f(rand(8, 4))
    assert f.cache_info().traces == 1 and f.cache_info().last_reason == "traced: first call"
    kernels = KERNEL_STATS["compiled"] + KERNEL_STATS["loaded"]  # (loaded: from the disk cache)
    f(rand(8, 4))
    assert f.cache_info().specializations == 1 and KERNEL_STATS["compiled"] + KERNEL_STATS["loaded"] == kernels
    f(rand(100, 4))  # a new batch size: same trace, no kernel compiled
    info = f.cache_info()
    assert (info.traces, info.specializations) == (1, 2)
    assert KERNEL_STATS["compiled"] + KERNEL_STATS["loaded"] == kernels
    assert info.last_reason.startswith("new shapes ((100, 4))")


def test_new_dtype_rank_or_unit_dims_retrace_once():
    f = fuseflow.jit(gelu)
    f(rand(8, 4))
    f(rand(8, 4, dtype=np.float64))
    assert f.cache_info().traces == 2
    assert f.cache_info().last_reason == "traced: argument 0 dtype changed from float32 to float64"
    f(rand(8, 4, 2))
    assert f.cache_info().traces == 3 and "rank changed from 2 to 3" in f.cache_info().last_reason
    f(rand(8, 1))
    assert f.cache_info().traces == 4 and "which dims are 1" in f.cache_info().last_reason
    f(rand(8, 1))
    f(rand(8, 4, dtype=np.float64))
    assert f.cache_info().traces == 4


def test_static_argnums():
    @fuseflow.jit(static_argnums=(1,))
    def power_sum(x, n):
        total = x
        for _ in range(n - 1):
            total = total * x
        return np.sum(total, axis=0)

    x = rand(6, 3)
    np.testing.assert_allclose(power_sum(x, 3), np.sum(x**3, axis=0), rtol=1e-5)
    np.testing.assert_allclose(power_sum(x, 2), np.sum(x**2, axis=0), rtol=1e-5)
    power_sum(x, 2)
    info = power_sum.cache_info()
    assert info.traces == 2 and info.last_reason == "traced: static argument 1 changed from 3 to 2"
    with pytest.raises(TypeError, match="hashable"):
        power_sum(x, [2])


def test_keyword_arguments_take_their_positions():
    @fuseflow.jit(static_argnums=(2,))
    def scaled(x, y=None, power=2):
        return (x + y) ** power

    x, y = rand(3), rand(3)
    np.testing.assert_allclose(scaled(x, y=y, power=3), (x + y) ** 3, rtol=1e-5)
    np.testing.assert_allclose(scaled(x, y, 3), (x + y) ** 3, rtol=1e-5)
    assert scaled.cache_info().traces == 1
    with pytest.raises(TypeError, match="scaled: "):
        scaled(x, z=1)


def test_jit_inside_jit_is_inlined():
    inner = fuseflow.jit(lambda x: x * 2)
    outer = fuseflow.jit(lambda x: inner(x) + 1)
    np.testing.assert_allclose(outer(np.ones(3, np.float32)), 3.0)
    assert inner.cache_info().traces == 0


# ----------------------------------------------------------------------------- lower

def test_lower_prints_one_fused_kernel():
    text = fuseflow.jit(gelu).lower(rand(16))
    assert text.count(" = fused ") == 1 and "tanh" in text


def test_lower_with_shape_specs():
    specs = [parse_type(t) for t in ("f32[?,8]", "f32[8,32]", "f32[32]", "f32[32,10]", "f32[10]")]
    text = fuseflow.jit(mlp_forward).lower(*specs)
    assert "f32[?,10]" in text and "matmul" in text


# ----------------------------------------------------------------------------- errors

def _line_of(fn, text):
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_unsupported_numpy_function_names_it_and_the_line():
    def f(x):
        return np.cumsum(x)

    with pytest.raises(UnsupportedNumpyError, match=r"numpy\.cumsum") as info:
        fuseflow.jit(f)(rand(3))
    assert f"test_jit.py:{_line_of(f, 'cumsum')}" in str(info.value)


@pytest.mark.parametrize("call, refused", [
    (lambda x: np.clip(x, 0, 1, out=x), "numpy.clip with out="),
    (lambda x: np.sum(x, where=x > 0), "numpy.sum with where="),
    (lambda x: np.reshape(x, (3, 1), order="F"), "numpy.reshape with order="),
    (lambda x: np.concatenate([x, x], dtype=np.float64), "numpy.concatenate with dtype="),
    (lambda x: np.zeros_like(x, shape=(2,)), "numpy.zeros_like with shape="),
])
def test_numpy_arguments_that_are_not_implemented_are_refused_not_ignored(call, refused):
    with pytest.raises(UnsupportedNumpyError, match=re.escape(refused)):
        fuseflow.jit(call)(rand(3))


def test_shape_mismatch_names_the_line():
    def f(x, w):
        return x @ w

    with pytest.raises(ValueError, match="inner dimensions") as info:
        fuseflow.jit(f)(rand(4, 3), rand(5, 2))
    assert f"test_jit.py:{_line_of(f, 'x @ w')}" in str(info.value)


def test_converting_a_tensor_to_an_array_is_a_clear_error():
    with pytest.raises(TypeError, match="symbolic"):
        fuseflow.jit(lambda x: np.asarray(x))(rand(3))


def test_unsupported_argument_type():
    with pytest.raises(TypeError, match="arrays and numbers"):
        fuseflow.jit(lambda x: x)("text")
