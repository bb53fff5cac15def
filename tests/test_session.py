"""Session.run: fetch structures, feeds, variables, the compile cache, scopes and seeds."""

import collections

import numpy as np
import pytest

import fuseflow as tf


def test_fetch_structures():
    a, b = tf.constant(1.0), tf.constant([2, 3])
    noop = tf.no_op()
    with tf.Session() as sess:
        assert sess.run(a) == np.float32(1.0)
        x, y = sess.run((a, b))
        assert x == 1.0 and list(y) == [2, 3]
        out = sess.run({"a": a, "nested": [b, (a, noop)]})
        assert out["a"] == 1.0 and list(out["nested"][0]) == [2, 3] and out["nested"][1][1] is None
        Pair = collections.namedtuple("Pair", "x y")
        assert sess.run(Pair(a, b)).x == 1.0
        assert sess.run(noop) is None
        assert sess.run(a.name) == 1.0


def test_scalar_fetch_is_numpy_scalar():
    with tf.Session() as sess:
        v = sess.run(tf.constant(3.0) * 2)
    assert isinstance(v, np.float32) and v == 6.0


def test_feed_by_name_and_feed_any_tensor():
    x = tf.placeholder(tf.float32, shape=[None, 2], name="x")
    y = x * 2
    z = y + 1
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(z, {"x:0": [[1, 2]]}), [[3, 5]])
        # feeding an intermediate tensor replaces its value
        np.testing.assert_array_equal(sess.run(z, {y: [[10, 20], [0, 0]]}), [[11, 21], [1, 1]])
        np.testing.assert_array_equal(sess.run(z, {x: np.ones((3, 2))}), np.full((3, 2), 3.0))


def test_same_signature_compiles_once():
    x = tf.placeholder(tf.float32, shape=[None, 3])
    y = tf.reduce_sum(tf.exp(x) * 2.0, axis=1)
    with tf.Session() as sess:
        sess.run(y, {x: np.ones((2, 3))})
        assert sess.compile_count == 1
        for _ in range(3):
            sess.run(y, {x: np.random.rand(2, 3)})
        assert sess.compile_count == 1
        sess.run(y, {x: np.ones((5, 3))})  # a new feed shape is a new signature
        assert sess.compile_count == 2
        sess.run([y], {x: np.ones((5, 3))})  # a list of the same fetch: same elements
        assert sess.compile_count == 2


def test_second_run_of_same_signature_compiles_no_kernel():
    from fuseflow.codegen.cpu import KERNEL_STATS

    x = tf.placeholder(tf.float32, shape=[4])
    y = tf.sqrt(x) + tf.sin(x)
    with tf.Session() as sess:
        sess.run(y, {x: np.ones(4)})
        before = dict(KERNEL_STATS)
        sess.run(y, {x: np.ones(4)})
        assert KERNEL_STATS == before


def test_variables_assign_and_initializers():
    v = tf.Variable([1.0, 2.0], name="v")
    w = tf.Variable(tf.zeros([2]), name="w", trainable=False)
    inc = v.assign_add([1.0, 1.0])
    dec = v.assign_sub([0.5, 0.5])
    setw = w.assign(v * 3)
    assert v.name == "v:0" and tf.trainable_variables() == [v] and tf.global_variables() == [v, w]
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(inc), [2, 3])
        np.testing.assert_array_equal(sess.run(inc), [3, 4])
        np.testing.assert_array_equal(sess.run(dec), [2.5, 3.5])
        np.testing.assert_array_equal(sess.run(setw), [7.5, 10.5])
        np.testing.assert_array_equal(sess.run(w), [7.5, 10.5])
        sess.run(tf.variables_initializer([v]))
        np.testing.assert_array_equal(sess.run(v), [1, 2])
        np.testing.assert_array_equal(v.eval(), [1, 2])


def test_fetched_variable_is_a_copy():
    v = tf.Variable([1.0, 2.0])
    with tf.Session() as sess:
        sess.run(tf.initialize_all_variables())
        got = sess.run(v)
        got[0] = 100.0
        np.testing.assert_array_equal(sess.run(v), [1, 2])


def test_sessions_have_separate_state():
    v = tf.Variable(1)
    inc = v.assign_add(1)
    s1, s2 = tf.Session(), tf.Session()
    s1.run(v.initializer)
    s2.run(v.initializer)
    s1.run(inc)
    assert s1.run(v) == 2 and s2.run(v) == 1


def test_control_dependencies_order_reads_after_assign():
    v = tf.Variable(0)
    assign = v.assign(5)
    with tf.control_dependencies([assign]):
        read = tf.identity(v)
    with tf.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(read) == 5


def test_group_runs_all():
    a, b = tf.Variable(0), tf.Variable(0)
    g = tf.group(a.assign(1), b.assign(2))
    with tf.Session() as sess:
        sess.run(g)
        assert sess.run([a, b]) == [1, 2]


def test_name_scopes_and_unique_names():
    with tf.name_scope("layer1"):
        a = tf.add(1.0, 2.0)
        b = tf.add(1.0, 2.0, name="sum")
    c = tf.add(1.0, 2.0)
    with tf.name_scope("layer1"):
        d = tf.add(1.0, 2.0)
    assert a.op.name == "layer1/Add" and b.op.name == "layer1/sum" and c.op.name == "Add"
    assert d.op.name == "layer1_1/Add"
    assert tf.get_default_graph().get_tensor_by_name("layer1/sum:0") is b


def test_device_strings_are_parsed_and_recorded():
    with tf.device("/cpu:0"):
        a = tf.constant(1.0)
        with tf.device("/job:worker/task:17/device:GPU:3"):
            b = tf.constant(2.0)
    assert a.op.device == "/device:CPU:0"
    assert b.op.device == "/job:worker/task:17/device:GPU:3"
    with pytest.raises(ValueError, match="bad device name"), tf.device("/tpu:banana"):
        pass


def test_graph_as_default_and_reset():
    g = tf.Graph()
    with g.as_default():
        x = tf.constant(1)
        assert tf.get_default_graph() is g
    assert x.graph is g and tf.get_default_graph() is not g
    with tf.Session(graph=g) as sess:
        assert sess.run(x) == 1


def test_random_seeds():
    def draw():
        tf.reset_default_graph()
        tf.set_random_seed(7)
        r = tf.random_normal([4])
        with tf.Session() as sess:
            return sess.run(r), sess.run(r)

    first, second = draw()
    again, _ = draw()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    tf.reset_default_graph()
    a = tf.random_uniform([3], seed=1)
    b = tf.random_uniform([3], seed=1)
    with tf.Session() as sess:
        np.testing.assert_array_equal(*sess.run([a, b]))


def test_constant_fill_and_strings():
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(tf.constant(7, shape=[2, 2])), [[7, 7], [7, 7]])
        np.testing.assert_array_equal(sess.run(tf.constant([1, 2], shape=[2, 3])), [[1, 2, 2], [2, 2, 2]])
        assert sess.run(tf.constant(1.5)).dtype == np.float32
        assert sess.run(tf.constant(np.float64(1.5))).dtype == np.float64
        assert sess.run(tf.constant([b"a", b"bc"])).tolist() == [b"a", b"bc"]


def test_interactive_session_eval():
    sess = tf.InteractiveSession()
    try:
        assert (tf.constant(2) * 3).eval() == 6
    finally:
        sess.close()


def test_unknown_rank_placeholder():
    x = tf.placeholder(tf.float32)
    y = tf.reduce_sum(x * 2, axis=-1)
    assert y.shape.ndims is None
    with tf.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: [[1, 2], [3, 4]]}), [6, 14])
        assert sess.run(y, {x: [1, 2, 3]}) == 12


def test_fetched_constants_are_fresh_writable_arrays():
    c = tf.constant([1.0, 2.0])
    with tf.Session() as sess:
        a, b = sess.run([c, c])
        a[0] = 5.0
        assert b[0] == 1.0 and sess.run(c)[0] == 1.0
