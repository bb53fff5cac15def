"""The first programs of the original TensorFlow introduction, run by fuseflow.

Only the import line differs from the original (and print is Python 3's).
"""

import time

import numpy as np

import fuseflow as tf

# Hello, TensorFlow
hello = tf.constant('Hello, TensorFlow!')
sess = tf.Session()
print(sess.run(hello))

# Matrix multiplication of two int32 constants
a = tf.constant([1, 2, 3, 4, 5, 6], shape=[2, 3])
b = tf.constant([7, 8, 9, 10, 11, 12], shape=[3, 2])
c = tf.matmul(a, b)
print(sess.run(c))

# A float placeholder fed with random numbers, multiplied by itself
x = tf.placeholder(tf.float32, shape=(1024, 1024))
y = tf.matmul(x, x)
with tf.Session() as sess:
    rand_array = np.random.rand(1024, 1024)
    start = time.perf_counter()
    out = sess.run(y, feed_dict={x: rand_array})
    first = time.perf_counter() - start
    print(out.shape, out.dtype, "max |error| vs numpy:",
          float(np.abs(out - rand_array.astype(np.float32) @ rand_array.astype(np.float32)).max()))
    print(f"first run (lower + compile + run): {first * 1e3:.1f} ms")

# Integer powers
x = tf.placeholder(tf.int32, shape=(2, 2))
y = tf.placeholder(tf.int32, shape=(2, 2))
z = tf.pow(x, y)
with tf.Session() as sess:
    print(sess.run(z, feed_dict={x: [[2, 2], [3, 3]], y: [[8, 16], [2, 3]]}))
