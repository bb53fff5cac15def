"""Benchmark: training steps as `Session.run(train_op)` against numpy (and jax.jit when installed).

    python -m fuseflow.bench.training [--quick]

- MLP 784-512-10 (relu, softmax cross-entropy, SGD), batch 128, float32: one train step.
  numpy: a hand-written forward and backward pass (the BLAS floor); jax: a jitted step.
- The plane-fitting program of the TensorFlow introduction: its 201 ``run`` calls after the
  first (the first, which compiles, is reported separately), against the same loop in numpy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fuseflow.bench.common import measure, optional


def mlp_fuseflow(x, y, w1, b1, w2, b2, lr):
    import fuseflow as tf

    graph = tf.Graph()
    with graph.as_default():
        xp = tf.placeholder(tf.float32, [None, x.shape[1]])
        yp = tf.placeholder(tf.float32, [None, y.shape[1]])
        v = [tf.Variable(a) for a in (w1, b1, w2, b2)]
        hidden = tf.nn.relu(tf.matmul(xp, v[0]) + v[1])
        logits = tf.matmul(hidden, v[2]) + v[3]
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=yp, logits=logits))
        train = tf.train.GradientDescentOptimizer(lr).minimize(loss)
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
    feed = {xp: x, yp: y}
    return lambda: sess.run(train, feed)


def mlp_numpy(x, y, w1, b1, w2, b2, lr):
    params = [w1.copy(), b1.copy(), w2.copy(), b2.copy()]
    lr = np.float32(lr)

    def step():
        w1, b1, w2, b2 = params
        h = np.maximum(x @ w1 + b1, 0)
        z = h @ w2 + b2
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        dz = (p - y) / np.float32(len(x))
        dh = (dz @ w2.T) * (h > 0)
        w2 -= lr * (h.T @ dz)
        b2 -= lr * dz.sum(axis=0)
        w1 -= lr * (x.T @ dh)
        b1 -= lr * dh.sum(axis=0)

    return step


def mlp_jax(x, y, w1, b1, w2, b2, lr):
    jax = optional("jax")
    if jax is None:
        return None
    import jax.numpy as jnp

    def loss(params, x, y):
        w1, b1, w2, b2 = params
        logits = jnp.maximum(x @ w1 + b1, 0) @ w2 + b2
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=1))

    @jax.jit
    def step(params, x, y):
        grads = jax.grad(loss)(params, x, y)
        return [p - lr * g for p, g in zip(params, grads)]

    state = {"params": [jax.device_put(a) for a in (w1, b1, w2, b2)]}
    xd, yd = jax.device_put(x), jax.device_put(y)

    def run():
        state["params"] = step(state["params"], xd, yd)
        state["params"][0].block_until_ready()

    return run


def plane_fuseflow(x_data, y_data):
    import fuseflow as tf

    graph = tf.Graph()
    with graph.as_default():
        b = tf.Variable(tf.zeros([1]))
        W = tf.Variable(tf.random_uniform([1, 2], -1.0, 1.0))
        y = tf.matmul(W, x_data) + b
        loss = tf.reduce_mean(tf.square(y - y_data))
        train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
        sess = tf.Session(graph=graph)
        sess.run(tf.initialize_all_variables())
    return sess, train


def plane_numpy(x_data, y_data):
    W = np.random.uniform(-1, 1, (1, 2)).astype(np.float32)
    b = np.zeros(1, np.float32)
    y_data = y_data.astype(np.float32)
    for _ in range(201):
        err = W @ x_data + b - y_data
        g = np.float32(2.0 / err.size) * err
        W -= np.float32(0.5) * (g @ x_data.T)
        b -= np.float32(0.5) * g.sum(axis=1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    batch, n_in, n_hidden, n_out = (32, 64, 32, 10) if args.quick else (128, 784, 512, 10)
    x = rng.random((batch, n_in), dtype=np.float32)
    y = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, batch)]
    params = (rng.standard_normal((n_in, n_hidden), dtype=np.float32) * 0.05, np.zeros(n_hidden, np.float32),
              rng.standard_normal((n_hidden, n_out), dtype=np.float32) * 0.05, np.zeros(n_out, np.float32))
    repeats = 5 if args.quick else 50
    report = {}
    runners = {"fuseflow": mlp_fuseflow(x, y, *params, 0.1), "numpy": mlp_numpy(x, y, *params, 0.1),
               "jax": mlp_jax(x, y, *params, 0.1)}
    times = {k: measure(f, repeats, warmup=3)["median"] for k, f in runners.items() if f}
    report["mlp_step_s"] = times
    peers = "  ".join(f"{k} {t * 1e3:.3f} ms ({t / times['fuseflow']:.2f}x)" for k, t in times.items()
                      if k != "fuseflow")
    print(f"MLP {n_in}-{n_hidden}-{n_out} train step, batch {batch}: fuseflow {times['fuseflow'] * 1e3:.3f} ms | "
          f"{peers}")

    x_data = np.float32(np.random.rand(2, 100))
    y_data = np.dot([0.100, 0.200], x_data) + 0.300
    sess, train = plane_fuseflow(x_data, y_data)
    start = time.perf_counter()
    sess.run(train)
    first = time.perf_counter() - start
    loop = measure(lambda: [sess.run(train) for _ in range(200)], repeats=5, warmup=1)["median"] * 201 / 200
    np_loop = measure(lambda: plane_numpy(x_data, y_data), repeats=5, warmup=1)["median"]
    report["plane"] = {"first_run_s": first, "201_runs_s": loop, "numpy_201_steps_s": np_loop}
    print(f"plane fitting: first run (compile) {first * 1e3:.1f} ms; 201 runs {loop * 1e3:.2f} ms "
          f"({loop / 201 * 1e6:.1f} us/run) | numpy 201 steps {np_loop * 1e3:.2f} ms ({np_loop / loop:.2f}x)")
    return report


if __name__ == "__main__":
    main()
