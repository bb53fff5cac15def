"""Kernel counts through the public API: what `Session.run` compiles for common composite ops.

Each test builds a graph with ``import fuseflow as tf``, runs it, and inspects the session's
compiled signature (`_Compiled.module`: the optimised IR; `.executable.steps`: the kernels in
order) to assert how many kernels run and which intermediates get buffers; results are checked
against numpy. The last tests check that a new batch size builds a new executable out of the
kernels already compiled.
"""

from __future__ import annotations

import numpy as np
import pytest

import fuseflow as tf
from fuseflow.codegen import fused as fused_codegen
from fuseflow.codegen.cpu import KERNEL_STATS

F32 = {"rtol": 2e-5, "atol": 1e-6}


def compiled(sess: tf.Session):
    """The one signature `sess` compiled."""
    (c,) = sess._cache.values()
    return c


def step_ops(c) -> list:
    """The IR op of each kernel step of a compiled signature, in order."""
    return [step[-1] for step in c.executable.steps]


def produced_values(c) -> int:
    """How many values the kernel steps produce (slots that are neither arguments nor constants)."""
    ex = c.executable
    return sum(1 for i, v in enumerate(ex.template) if i >= ex.n_args and v is None)


def run_one(build, *arrays):
    """``build(*placeholders)`` run once on `arrays`; returns (result, the compiled signature)."""
    phs = [tf.placeholder(tf.float32, a.shape) for a in arrays]
    y = build(*phs)
    with tf.Session() as sess:
        out = sess.run(y, dict(zip(phs, arrays)))
        return out, compiled(sess)


def gelu(x):
    return 0.5 * x * (1 + tf.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def np_gelu(x):
    x = x.astype(np.float64)
    return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def np_softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_log_softmax(x):
    x = x.astype(np.float64)
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def rng_array(shape, scale=1.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def test_gelu_is_one_kernel_without_intermediate_buffers():
    x = rng_array((1 << 16,), scale=3.0)
    y, c = run_one(gelu, x)
    (op,) = step_ops(c)
    assert op.name == "fused"
    assert [o.name for o in c.module.main.ops[:-1] if o.name != "constant"] == ["fused"]
    assert len(op.results) == 1 and len(op.regions[0].terminator.operands) == 1  # yields the final value only
    assert produced_values(c) == 1
    assert c.executable.plan.buffers == []
    np.testing.assert_allclose(y, np_gelu(x), **F32)


@pytest.mark.parametrize("name, np_fn", [("softmax", np_softmax), ("log_softmax", np_log_softmax)])
def test_row_softmax_is_one_kernel(name, np_fn):
    x = rng_array((128, 300), scale=5.0)
    y, c = run_one(getattr(tf.nn, name), x)
    (op,) = step_ops(c)
    assert op.name == "fused"
    region = [o.name for o in op.regions[0].ops]
    assert region.count("reduce_max") == 1 and region.count("reduce_sum") == 1
    assert produced_values(c) == 1 and c.executable.plan.buffers == []
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, np_fn(x), **F32)


def test_softmax_with_infinities_matches_numpy():
    x = rng_array((128, 300), scale=5.0)
    x[3, 7] = -np.inf
    x[5, :] = -np.inf  # a row of -inf: NaN everywhere, as numpy gives
    y, _ = run_one(tf.nn.softmax, x)
    with np.errstate(invalid="ignore"):
        want = np_softmax(x)
    np.testing.assert_allclose(y, want, **F32)


def test_dense_relu_is_matmul_plus_one_fused_kernel():
    x, w, b = rng_array((128, 300), seed=1), rng_array((300, 10), seed=2), rng_array((10,), seed=3)
    y, c = run_one(lambda x, w, b: tf.nn.relu(tf.matmul(x, w) + b), x, w, b)
    ops = step_ops(c)
    assert [op.name for op in ops] == ["matmul", "fused"]
    epilogue = [o.name for o in ops[1].regions[0].ops if o.name not in ("constant", "yield")]
    assert epilogue == ["add", "maximum"]
    want = np.maximum(x.astype(np.float64) @ w.astype(np.float64) + b, 0)
    np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5)


def test_dense_softmax_classifier_is_two_kernels():
    x, w, b = rng_array((128, 300), seed=4), rng_array((300, 10), seed=5), rng_array((10,), seed=6)
    y, c = run_one(lambda x, w, b: tf.nn.softmax(tf.matmul(x, w) + b), x, w, b)
    assert [op.name for op in step_ops(c)] == ["matmul", "fused"]
    np.testing.assert_allclose(y, np_softmax(x.astype(np.float64) @ w + b), rtol=2e-5, atol=1e-6)


# ----------------------------------------------------------------------------- batch sizes


def mlp(x, w, b):
    return tf.nn.log_softmax(tf.nn.relu(tf.matmul(x, w) + b))


def _built() -> int:
    """Kernels compiled or loaded from the disk cache: neither may happen for a new batch size."""
    return KERNEL_STATS["compiled"] + KERNEL_STATS["loaded"]


def test_new_batch_size_reuses_compiled_kernels():
    w, b = rng_array((300, 10), seed=7), rng_array((10,), seed=8)
    x = tf.placeholder(tf.float32, (None, 300))
    y = [mlp(x, w, b), tf.nn.softmax(x), gelu(x)]
    with tf.Session() as sess:
        first = sess.run(y, {x: rng_array((128, 300), seed=9)})
        built_before = _built()
        small = rng_array((64, 300), seed=10)
        second = sess.run(y, {x: small})
        assert len(sess._cache) == 2 and sess.compile_count == 2  # a new executable ...
        assert _built() == built_before  # ... built from the kernels compiled for 128
    assert [r.shape[0] for r in first] == [128] * 3 and [r.shape[0] for r in second] == [64] * 3
    np.testing.assert_allclose(second[1], np_softmax(small), **F32)
    np.testing.assert_allclose(second[2], np_gelu(small), **F32)


def test_new_batch_size_across_the_parallel_threshold_reuses_compiled_kernels():
    # 128 rows of width PARALLEL_MIN_ELEMENTS / 128: the kernel for 128 rows runs its outer loop split
    # across the cores, the one for 64 rows does not. (An op chain no other test compiles, so the
    # count is independent of test order.)
    width = fused_codegen.PARALLEL_MIN_ELEMENTS // 128
    x = tf.placeholder(tf.float32, (None, width))
    y = tf.sin(tf.cos(tf.exp(tf.sin(tf.sqrt(tf.abs(x))))))
    with tf.Session() as sess:
        sess.run(y, {x: rng_array((128, width), seed=11)})
        built_before = _built()
        sess.run(y, {x: rng_array((64, width), seed=12)})
        assert _built() == built_before
