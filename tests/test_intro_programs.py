"""The first four programs of the original TensorFlow introduction, only the import changed."""

import numpy as np

import fuseflow as tf


def test_hello():
    hello = tf.constant('Hello, TensorFlow!')
    sess = tf.Session()
    assert sess.run(hello) == b'Hello, TensorFlow!'


def test_int32_matmul():
    a = tf.constant([1, 2, 3, 4, 5, 6], shape=[2, 3])
    b = tf.constant([7, 8, 9, 10, 11, 12], shape=[3, 2])
    c = tf.matmul(a, b)
    sess = tf.Session()
    out = sess.run(c)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, np.arange(1, 7).reshape(2, 3) @ np.arange(7, 13).reshape(3, 2))
    np.testing.assert_array_equal(out, [[58, 64], [139, 154]])


def test_placeholder_matmul_1024():
    x = tf.placeholder(tf.float32, shape=(1024, 1024))
    y = tf.matmul(x, x)
    with tf.Session() as sess:
        rand_array = np.random.rand(1024, 1024)
        out = sess.run(y, feed_dict={x: rand_array})
    want = rand_array.astype(np.float32) @ rand_array.astype(np.float32)
    assert out.dtype == np.float32 and out.shape == (1024, 1024)
    np.testing.assert_allclose(out, want, rtol=1e-4)


def test_int32_pow():
    x = tf.placeholder(tf.int32, shape=(2, 2))
    y = tf.placeholder(tf.int32, shape=(2, 2))
    z = tf.pow(x, y)
    with tf.Session() as sess:
        out = sess.run(z, feed_dict={x: [[2, 2], [3, 3]], y: [[8, 16], [2, 3]]})
    np.testing.assert_array_equal(out, np.power([[2, 2], [3, 3]], [[8, 16], [2, 3]]))
    np.testing.assert_array_equal(out, [[256, 65536], [9, 27]])
