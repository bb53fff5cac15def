"""Training workloads: train steps as `Session.run(train_op)` against numpy (and jax.jit).

    python -m fuseflow.bench.training [--quick]    # the harness, with only these workloads

- mlp_step: MLP 784-512-10 (relu, softmax cross-entropy, SGD), batch 128, float32: one train
  step. numpy: a hand-written forward and backward pass (the BLAS floor); jax: a jitted step.
- plane_fitting: the TensorFlow introduction's program: its 201 ``run`` calls after the first,
  against the same loop in numpy; the first run (which compiles) is its own row.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from fuseflow.bench.common import Case, Skip, optional, repeated


def mlp_fuseflow(x, y, w1, b1, w2, b2, lr):
    """A runner of one ``Session.run(train_op)`` of the MLP (its variables initialised first)."""
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
    """A runner of the same step written by hand in numpy: forward, gradients, in-place update."""
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
    """A runner of the step as one ``jax.jit`` of ``jax.grad`` and the update."""
    jax = optional("jax")
    if jax is None:
        return Skip("jax not installed")
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
    """The plane-fitting program's session (variables initialised) and train op."""
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
    """The plane-fitting program's 201 steps of gradient descent in numpy."""
    W = np.random.default_rng(0).uniform(-1, 1, (1, 2)).astype(np.float32)
    b = np.zeros(1, np.float32)
    y_data = y_data.astype(np.float32)
    for _ in range(201):
        err = W @ x_data + b - y_data
        g = np.float32(2.0 / err.size) * err
        W -= np.float32(0.5) * (g @ x_data.T)
        b -= np.float32(0.5) * g.sum(axis=1)


def mlp_data(quick: bool) -> tuple:
    """Inputs, one-hot labels and initial parameters of the MLP: 784-512-10, batch 128
    (64-32-10, batch 32 for --quick)."""
    rng = np.random.default_rng(0)
    batch, n_in, n_hidden, n_out = (32, 64, 32, 10) if quick else (128, 784, 512, 10)
    x = rng.random((batch, n_in), dtype=np.float32)
    y = np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, batch)]
    params = (rng.standard_normal((n_in, n_hidden), dtype=np.float32) * 0.05, np.zeros(n_hidden, np.float32),
              rng.standard_normal((n_hidden, n_out), dtype=np.float32) * 0.05, np.zeros(n_out, np.float32))
    return x, y, *params


def mlp_step_case(quick: bool) -> Case:
    """One SGD step of the MLP; ten steps per timed call, since a step takes about a millisecond."""
    data = mlp_data(quick)
    x, _, w1, _, _, b2 = data
    steps = 10
    runners = {"fuseflow": mlp_fuseflow(*data, 0.1), "numpy": mlp_numpy(*data, 0.1), "jax": mlp_jax(*data, 0.1)}
    runners = {k: repeated(f, steps) if callable(f) else f for k, f in runners.items()}
    label = f"{w1.shape[0]}-{w1.shape[1]}-{b2.size} batch {len(x)}"
    return Case(label, runners, calls=steps)


def plane_data() -> tuple:
    """The introduction's 100 points on the plane y = 0.1 x0 + 0.2 x1 + 0.3."""
    x_data = np.float32(np.random.default_rng(0).random((2, 100)))
    return x_data, np.dot([0.100, 0.200], x_data) + 0.300


def plane_cases(quick: bool) -> list[Case]:
    """The first run (lower + compile + run) once, then the 201 runs the program makes after it."""
    x_data, y_data = plane_data()
    sess, train = plane_fuseflow(x_data, y_data)

    def first_run() -> float:
        start = time.perf_counter()
        sess.run(train)
        return time.perf_counter() - start

    first = Case("first run (compile)", {"fuseflow": first_run}, self_timed=True, repeats=1)
    loop = Case("201 runs", {"fuseflow": repeated(sess.run, 201, train),
                             "numpy": lambda: plane_numpy(x_data, y_data)})
    return [first, loop]


if __name__ == "__main__":
    from fuseflow.bench import harness

    harness.main(["--only", "mlp_step,plane_fitting", *sys.argv[1:]])
