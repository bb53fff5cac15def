"""Buffer planning: dead intermediates share buffers; results and their views never do."""

import weakref

import numpy as np
import pytest

import fuseflow as tf
from fuseflow.ir import dtypes as dt
from fuseflow.ir.builder import Builder
from fuseflow.ir.types import TensorType
from fuseflow.runtime.executable import Executable
from fuseflow.runtime.memory import plan_buffers

F = TensorType(dt.float32, (8, 8))


def _chain():
    """Four matmuls in a row: each intermediate dies at the next step."""
    b = Builder([F, F])
    x, w = b.args
    for _ in range(4):
        x = b.op("matmul", x, w, transpose_a=False, transpose_b=False)
    return b.finish([x])


def test_dead_intermediates_share_buffers():
    fn = _chain()
    plan = plan_buffers(fn, lambda op: True)
    assert plan.planned_values == 3  # the last matmul is the result
    assert len(plan.buffers) == 2  # x1 and x2 alternate, x3 reuses x1's buffer
    owners = [plan.buffer_of[op.results[0]] for op in fn.ops[:3]]
    assert owners[0] == owners[2] != owners[1]


def test_results_and_views_of_results_are_not_planned():
    b = Builder([F])
    (x,) = b.args
    y = b.op("exp", x)
    z = b.op("reshape", y, shape=(64,))
    fn = b.finish([z])
    assert plan_buffers(fn, lambda op: True).planned_values == 0


def test_executable_reuses_buffers_across_runs_and_returns_fresh_results():
    fn = _chain()
    exe = Executable(fn)
    x = np.eye(8, dtype=np.float32) * 2
    w = np.eye(8, dtype=np.float32)
    first = exe.run([x, w])[0]
    second = exe.run([x * 3, w])[0]
    np.testing.assert_array_equal(first, x)
    np.testing.assert_array_equal(second, x * 3)
    assert first is not second


def test_session_results_survive_later_runs():
    x = tf.placeholder(tf.float32, shape=[4, 4])
    y = tf.matmul(tf.matmul(x, x), x)
    with tf.Session() as sess:
        a = sess.run(y, {x: np.eye(4)})
        sess.run(y, {x: np.eye(4) * 2})
    np.testing.assert_array_equal(a, np.eye(4))


def test_results_the_caller_holds_are_never_recycled():
    x = tf.placeholder(tf.float32, [4])
    y = x * 2
    with tf.Session() as sess:
        held = sess.run(y, {x: np.ones(4)})
        view = sess.run(y, {x: np.full(4, 3.0)})[1:]
        sess.run(y, {x: np.full(4, 5.0)})  # dropped at once: its array may serve the next run
        latest = sess.run(y, {x: np.full(4, 7.0)})
        again = sess.run(y, {x: np.full(4, 9.0)})
    np.testing.assert_array_equal(held, [2, 2, 2, 2])
    np.testing.assert_array_equal(view, [6, 6, 6])
    np.testing.assert_array_equal(latest, [14, 14, 14, 14])
    np.testing.assert_array_equal(again, [18, 18, 18, 18])


@pytest.mark.parametrize("n", [1 << 15, 1 << 19])  # worth recycling (RECYCLE_MIN_BYTES); split across threads
def test_dropped_results_are_recycled(n):
    x = tf.placeholder(tf.float32, [n])
    y = tf.exp(x)
    with tf.Session() as sess:
        first = weakref.ref(sess.run(y, {x: np.zeros(n)}))
        second = sess.run(y, {x: np.ones(n)})
    assert second is first()  # the same array object, filled anew
    np.testing.assert_allclose(second, np.e)
