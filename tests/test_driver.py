"""Native drivers: a small training step runs as one compiled function, with the same results."""

import numpy as np
import pytest

import fuseflow as tf
from fuseflow.runtime import executable


def plane_fitting(steps: int, feed_readonly: bool = False):
    rng = np.random.default_rng(0)
    x_data = rng.random((2, 100), dtype=np.float32)
    y_data = np.dot([0.100, 0.200], x_data) + 0.300
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [2, 100])
        b = tf.Variable(tf.zeros([1]))
        W = tf.Variable(tf.constant([[0.5, -0.5]]))
        loss = tf.reduce_mean(tf.square(tf.matmul(W, x) + b - y_data))
        train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
    feed = x_data.copy()
    feed.setflags(write=not feed_readonly)
    for _ in range(steps):
        sess.run(train, {x: feed})
    compiled = [c for c in sess._cache.values() if c.lowered.state_out][-1]
    return sess.run([W, b]), compiled.executable


def test_training_step_gets_a_driver_with_the_stepwise_results(monkeypatch):
    (w, b), exe = plane_fitting(201)
    assert exe.driver is not None
    monkeypatch.setattr(executable, "DRIVER_MAX_ELEMENTS", 0)
    (w_steps, b_steps), exe_steps = plane_fitting(201)
    assert exe_steps.driver is None
    np.testing.assert_allclose(w, w_steps, rtol=1e-5)
    np.testing.assert_allclose(b, b_steps, rtol=1e-5)
    np.testing.assert_allclose(w, [[0.1, 0.2]], atol=1e-3)


def test_an_argument_the_driver_cannot_take_runs_the_steps():
    (w, b), exe = plane_fitting(201, feed_readonly=True)
    assert exe.driver is not None
    np.testing.assert_allclose(w, [[0.1, 0.2]], atol=1e-3)
    np.testing.assert_allclose(b, [0.3], atol=1e-3)


def test_inference_runs_get_no_driver():
    x = tf.placeholder(tf.float32, [4])
    with tf.Session() as sess:
        sess.run(tf.exp(x) * 2 + tf.reduce_sum(x), {x: np.ones(4)})
        assert all(c.executable.driver is None for c in sess._cache.values())


@pytest.mark.parametrize("update", ["product - v", "v + 0.5 * product"])  # a matmul; a matmul_add (`gemm`)
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
def test_inline_matmul_loops_match_blas(ta, tb, update):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 3) if ta else (3, 5)).astype(np.float32)
    c = rng.standard_normal((4, 5) if tb else (5, 4)).astype(np.float32)
    start = rng.standard_normal((3, 4)).astype(np.float32)
    v, left = tf.Variable(start), tf.Variable(a)  # (a constant product would fold)
    product = tf.matmul(left, c, transpose_a=ta, transpose_b=tb)
    counter = tf.Variable(0)  # a second kernel: a driver takes two or more
    new = product - v if update == "product - v" else v + 0.5 * product
    step = tf.group(tf.assign(v, new), counter.assign_add(1))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(step)
        compiled = [c for c in sess._cache.values() if c.lowered.state_out][-1]
        assert compiled.executable.driver is not None
        p = (a.T if ta else a) @ (c.T if tb else c)
        want = p - start if update == "product - v" else start + 0.5 * p
        np.testing.assert_allclose(sess.run(v), want, rtol=1e-5, atol=1e-6)
        ops = [op.name for op in compiled.module.main.ops]
        assert ("matmul_add" in ops) == (update != "product - v")
