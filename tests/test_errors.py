"""Bad input gets a clear error naming the user's tensor or op, and changes nothing."""

import numpy as np
import pytest

import fuseflow as tf

THIS_FILE = __file__


def test_feed_of_wrong_shape_names_placeholder():
    x = tf.placeholder(tf.float32, shape=[None, 3], name="images")
    y = x * 2
    with tf.Session() as sess, pytest.raises(ValueError, match=r"shape \(2, 4\).*'images:0'.*\(\?, 3\)"):
        sess.run(y, {x: np.ones((2, 4))})


def test_feed_of_unsafe_dtype_names_placeholder():
    x = tf.placeholder(tf.int32, shape=[2], name="labels")
    with tf.Session() as sess:
        with pytest.raises(TypeError, match=r"float64.*'labels:0'.*int32"):
            sess.run(x + 1, {x: np.array([1.5, 2.0])})
        # safe conversions are accepted: Python ints, float64 -> float32
        np.testing.assert_array_equal(sess.run(x + 1, {x: [1, 2]}), [2, 3])
    f = tf.placeholder(tf.float32, shape=[2])
    with tf.Session() as sess:
        assert sess.run(f, {f: np.array([1.0, 2.0])}).dtype == np.float32


def test_missing_feed_names_placeholder():
    x = tf.placeholder(tf.float32, shape=[2], name="inp")
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError,
                                             match="must feed a value for placeholder tensor 'inp'"):
        sess.run(x * 2)


def test_fetch_from_another_graph():
    g = tf.Graph()
    with g.as_default():
        other = tf.constant(1.0, name="other")
    with tf.Session() as sess, pytest.raises(ValueError, match="'other:0' belongs to another graph"):
        sess.run(other)


def test_unknown_tensor_name():
    tf.constant(1.0, name="c")
    with tf.Session() as sess:
        with pytest.raises(KeyError, match="no tensor named 'nothere:0'"):
            sess.run("nothere:0")
        with pytest.raises(KeyError, match="no tensor named 'c:3'"):
            sess.run("c:3")


def test_uninitialized_variable_is_named():
    v = tf.Variable(tf.zeros([3]), name="weights")
    with tf.Session() as sess, pytest.raises(tf.errors.FailedPreconditionError, match="uninitialized value weights"):
        sess.run(v * 2)


def test_matmul_inner_dims_error_at_build_time_names_op_file_and_line():
    a, b = tf.ones([2, 3]), tf.ones([4, 5])
    with pytest.raises(ValueError) as info:
        tf.matmul(a, b, name="logits")
    msg = str(info.value)
    assert "'logits'" in msg and "(2, 3)" in msg and "(4, 5)" in msg and f"{THIS_FILE}:" in msg


def test_broadcast_error_at_build_time_names_both_shapes_and_line():
    a, b = tf.ones([2, 3]), tf.ones([4, 5])
    with pytest.raises(ValueError) as info:
        a + b
    line = info.tb.tb_lineno
    msg = str(info.value)
    assert "(2, 3)" in msg and "(4, 5)" in msg and "Add" in msg and f"{THIS_FILE}:{line}" in msg


def test_dtype_mismatch_at_build_time():
    with pytest.raises(TypeError, match="int32 and float32"):
        tf.add(tf.constant(1), tf.constant(1.0))
    with pytest.raises(TypeError):
        tf.sqrt(tf.constant(4))


def test_failed_run_leaves_variables_unchanged():
    v = tf.Variable([1.0, 2.0, 3.0], name="v")
    idx = tf.placeholder(tf.int32, shape=[None], name="idx")
    update = v.assign(v * 10 + tf.reduce_sum(tf.gather(v, idx)))
    counter = tf.Variable(0, name="steps")
    step = tf.group(update, counter.assign_add(1))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        with pytest.raises(tf.errors.InvalidArgumentError, match="gather"):
            sess.run(step, {idx: [0, 7]})  # index 7 out of range: fails in the kernel
        np.testing.assert_array_equal(sess.run(v), [1, 2, 3])
        assert sess.run(counter) == 0
        with pytest.raises(ValueError):
            sess.run(step, {idx: [[0]]})  # wrong rank: fails before running
        assert sess.run(counter) == 0
        sess.run(step, {idx: [0]})
        np.testing.assert_array_equal(sess.run(v), [11, 21, 31])
        assert sess.run(counter) == 1


def test_closed_session():
    sess = tf.Session()
    sess.close()
    with pytest.raises(RuntimeError, match="closed Session"):
        sess.run(tf.constant(1))


def test_tensor_as_bool_is_an_error():
    with pytest.raises(TypeError, match="Python bool"):
        if tf.constant(True):
            pass


def test_assign_shape_mismatch_at_build_time():
    v = tf.Variable(tf.zeros([2, 2]), name="kernel")
    with pytest.raises(ValueError, match="'kernel'"):
        v.assign(tf.zeros([3]))
