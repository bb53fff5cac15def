"""A two-hidden-layer ReLU perceptron on scikit-learn's 8x8 digits, trained with Adam.

64 -> 128 -> 64 -> 10, truncated-normal weights, softmax cross-entropy on the logits. Prints the
training loss every `log_every` steps and the final test accuracy; `main()` returns the metrics.
"""

import time

import fuseflow as tf


def dense(x, n_in, n_out, name, activation=None):
    with tf.name_scope(name):
        W = tf.Variable(tf.truncated_normal([n_in, n_out], stddev=(2.0 / n_in) ** 0.5), name="W")
        b = tf.Variable(tf.zeros([n_out]), name="b")
        z = tf.matmul(x, W) + b
        return activation(z) if activation is not None else z


def main(steps: int = 3000, batch_size: int = 100, log_every: int = 500) -> dict:
    start = time.perf_counter()
    tf.set_random_seed(0)
    digits = tf.datasets.load_digits(one_hot=True)

    x = tf.placeholder(tf.float32, [None, 64], name="x")
    y_ = tf.placeholder(tf.float32, [None, 10], name="labels")
    h1 = dense(x, 64, 128, "hidden1", tf.nn.relu)
    h2 = dense(h1, 128, 64, "hidden2", tf.nn.relu)
    logits = dense(h2, 64, 10, "logits")

    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y_, logits=logits))
    global_step = tf.train.get_or_create_global_step()
    train_op = tf.train.AdamOptimizer(1e-3).minimize(loss, global_step=global_step)
    correct = tf.equal(tf.argmax(logits, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))

    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for step in range(1, steps + 1):
            batch_xs, batch_ys = digits.train.next_batch(batch_size)
            _, batch_loss = sess.run([train_op, loss], feed_dict={x: batch_xs, y_: batch_ys})
            if step % log_every == 0 or step == 1:
                print(f"step {step:5d}  loss {batch_loss:.4f}")
        test_accuracy = float(sess.run(accuracy, feed_dict={x: digits.test.images, y_: digits.test.labels}))
        final_step = int(sess.run(global_step))
    seconds = time.perf_counter() - start
    print(f"test accuracy {test_accuracy:.4f} after {final_step} steps ({seconds:.1f} s)")
    return {"accuracy": test_accuracy, "loss": float(batch_loss), "steps": final_step, "seconds": seconds}


if __name__ == "__main__":
    main()
