"""The original "MNIST for ML beginners" softmax regression, on scikit-learn's 8x8 digits.

The only changes from the original: the import line, the data set loading line, and 64 features
instead of 784 in the shapes. The program sits in `main()` so tests can run it and read the accuracy.
"""

import fuseflow as tf


def main() -> dict:
    mnist = tf.datasets.load_digits(one_hot=True)

    x = tf.placeholder(tf.float32, [None, 64])
    W = tf.Variable(tf.zeros([64, 10]))
    b = tf.Variable(tf.zeros([10]))
    y = tf.nn.softmax(tf.matmul(x, W) + b)

    y_ = tf.placeholder(tf.float32, [None, 10])
    cross_entropy = -tf.reduce_sum(y_ * tf.log(y))
    train_step = tf.train.GradientDescentOptimizer(0.01).minimize(cross_entropy)

    init = tf.initialize_all_variables()
    sess = tf.Session()
    sess.run(init)

    for i in range(1000):
        batch_xs, batch_ys = mnist.train.next_batch(100)
        sess.run(train_step, feed_dict={x: batch_xs, y_: batch_ys})

    correct_prediction = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_prediction, "float"))
    test_accuracy = float(sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels}))
    print("test accuracy", test_accuracy)
    return {"accuracy": test_accuracy}


if __name__ == "__main__":
    main()
