"""The original TensorFlow introduction's first program: fit a plane to 100 points by gradient descent.

Only the import line differs from the original (and print is Python 3's); the program sits in `main()`
so tests can run it and read the fitted values.
"""

import numpy as np

import fuseflow as tf


def main() -> dict:
    # Create 100 phony x, y data points in NumPy, y = x * 0.1 + 0.3
    x_data = np.float32(np.random.rand(2, 100))  # Random input
    y_data = np.dot([0.100, 0.200], x_data) + 0.300

    # Construct a linear model.
    b = tf.Variable(tf.zeros([1]))
    W = tf.Variable(tf.random_uniform([1, 2], -1.0, 1.0))
    y = tf.matmul(W, x_data) + b

    # Minimize the squared errors.
    loss = tf.reduce_mean(tf.square(y - y_data))
    optimizer = tf.train.GradientDescentOptimizer(0.5)
    train = optimizer.minimize(loss)

    # For initializing the variables.
    init = tf.initialize_all_variables()

    # Launch the graph
    sess = tf.Session()
    sess.run(init)

    # Fit the plane.
    for step in range(0, 201):  # noqa: PIE808 (as the original reads)
        sess.run(train)
        if step % 20 == 0:
            print(step, sess.run(W), sess.run(b))

    # Learns best fit is W: [[0.100  0.200]], b: [0.300]
    return {"W": sess.run(W), "b": sess.run(b), "loss": float(sess.run(loss))}


if __name__ == "__main__":
    main()
