"""End-to-end training: the tutorial programs in examples/, the optimizers' update rules against numpy,
the nn losses and dropout, and that a failed training step changes no state."""

import importlib.util
import pathlib

import numpy as np
import pytest

import fuseflow as tf

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- the programs in examples/


def test_plane_fitting_finds_the_plane():
    np.random.seed(0)
    tf.set_random_seed(0)
    result = load_example("plane_fitting").main()
    np.testing.assert_allclose(result["W"], [[0.100, 0.200]], atol=1e-3)
    np.testing.assert_allclose(result["b"], [0.300], atol=1e-3)


def test_softmax_regression_on_digits():
    result = load_example("softmax_regression").main()
    assert result["accuracy"] >= 0.90


def test_mlp_on_digits():
    result = load_example("mlp").main()
    assert result["steps"] == 3000
    assert result["accuracy"] >= 0.95


# ----------------------------------------------------------------------------- optimizers vs numpy

SCALE = np.array([1.0, 0.5, 2.0], np.float32)
TARGET = np.array([0.3, -1.2, 2.0], np.float32)
START_W = np.array([1.0, 2.0, -1.0], np.float32)
START_B = np.array([[0.5, -0.25]], np.float32)


def quadratic():
    """``sum(SCALE * (w - TARGET)^2) + sum(b^2)``: gradients ``2 SCALE (w - TARGET)`` and ``2 b``."""
    w = tf.Variable(START_W, name="w")
    b = tf.Variable(START_B, name="b")
    loss = tf.reduce_sum(SCALE * tf.square(w - TARGET)) + tf.reduce_sum(tf.square(b))
    return [w, b], loss


def numpy_grads(values):
    w, b = values
    return [2 * SCALE * (w - TARGET), 2 * b]


def run_optimizer(opt, steps=5):
    variables, loss = quadratic()
    train = opt.minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        history = []
        for _ in range(steps):
            sess.run(train)
            history.append(sess.run(variables))
    return history


def numpy_momentum(lr, mu, nesterov, steps=5):
    values = [START_W.copy(), START_B.copy()]
    accums = [np.zeros_like(v) for v in values]
    history = []
    for _ in range(steps):
        grads = numpy_grads(values)
        for i, g in enumerate(grads):
            accums[i] = mu * accums[i] + g
            values[i] = values[i] - (lr * (g + mu * accums[i]) if nesterov else lr * accums[i])
        history.append([v.copy() for v in values])
    return history


def numpy_adam(lr, b1, b2, eps, steps=5):
    values = [START_W.copy(), START_B.copy()]
    ms = [np.zeros_like(v) for v in values]
    vs = [np.zeros_like(v) for v in values]
    history = []
    for t in range(1, steps + 1):
        grads = numpy_grads(values)
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        for i, g in enumerate(grads):
            ms[i] = b1 * ms[i] + (1 - b1) * g
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
            values[i] = values[i] - lr_t * ms[i] / (np.sqrt(vs[i]) + eps)
        history.append([v.copy() for v in values])
    return history


def assert_histories_close(got, want):
    for step, (g, w) in enumerate(zip(got, want)):
        for gv, wv in zip(g, w):
            np.testing.assert_allclose(gv, wv, rtol=1e-5, atol=1e-6, err_msg=f"step {step + 1}")


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_momentum_matches_tf1_update_rule(nesterov):
    got = run_optimizer(tf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=nesterov))
    assert_histories_close(got, numpy_momentum(0.05, 0.9, nesterov))


def test_adam_matches_tf1_update_rule():
    got = run_optimizer(tf.train.AdamOptimizer(0.1, beta1=0.8, beta2=0.99, epsilon=1e-3))
    assert_histories_close(got, numpy_adam(0.1, 0.8, 0.99, 1e-3))


def test_gradient_descent_matches_numpy():
    got = run_optimizer(tf.train.GradientDescentOptimizer(0.1))
    values, want = [START_W.copy(), START_B.copy()], []
    for _ in range(5):
        values = [v - 0.1 * g for v, g in zip(values, numpy_grads(values))]
        want.append(values)
    assert_histories_close(got, want)


def test_apply_gradients_increments_global_step():
    (w, b), loss = quadratic()
    step = tf.train.get_or_create_global_step()
    opt = tf.train.GradientDescentOptimizer(0.1)
    grads_and_vars = opt.compute_gradients(loss)
    assert [v for _, v in grads_and_vars] == [w, b]
    train = opt.apply_gradients(grads_and_vars, global_step=step)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        assert sess.run(step) == 0
        for _ in range(3):
            sess.run(train)
        assert sess.run(step) == 3
        np.testing.assert_allclose(sess.run(b), START_B * 0.8 ** 3, rtol=1e-6)


def test_slot_variables_are_initialised_by_global_variables_initializer():
    (w, b), loss = quadratic()
    momentum = tf.train.MomentumOptimizer(0.1, 0.9)
    adam = tf.train.AdamOptimizer(0.1, beta1=0.8, beta2=0.99)
    train = tf.group(momentum.minimize(loss), adam.minimize(loss))
    slots = [momentum.get_slot(w, "momentum"), momentum.get_slot(b, "momentum"),
             adam.get_slot(w, "m"), adam.get_slot(w, "v"), adam.get_slot(b, "m"), adam.get_slot(b, "v")]
    assert all(s is not None for s in slots)
    assert adam.get_slot_names() == ["m", "v"] and momentum.get_slot_names() == ["momentum"]
    assert not any(s in tf.trainable_variables() for s in slots)
    assert all(s in tf.global_variables() for s in slots)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for slot, var in zip(slots, [w, b, w, w, b, b]):
            value = sess.run(slot)
            assert value.shape == var.shape and not value.any()
        sess.run(train)
        assert sess.run(momentum.get_slot(w, "momentum")).any() and sess.run(adam.get_slot(b, "v")).any()


def test_gradients_fetched_with_the_train_op_are_taken_at_the_values_the_loss_read():
    # The gradient request is built after the update; an assign scheduled before it once made the
    # derivative (taken w.r.t. the variable's new value, which the loss never read) silently zero.
    w = tf.Variable(np.array([1.0, 2.0], np.float32), name="w")
    loss = tf.reduce_sum(tf.square(w))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    (grad,) = tf.gradients(loss, [w])
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        _, got = sess.run([train, grad])
        np.testing.assert_allclose(got, [2.0, 4.0])
        np.testing.assert_allclose(sess.run(w), [0.8, 1.6], rtol=1e-6)


def test_two_optimizers_in_one_step_both_see_the_gradient():
    w = tf.Variable(np.array([1.0, 2.0], np.float32), name="w")
    loss = tf.reduce_sum(tf.square(w))
    momentum, adam = tf.train.MomentumOptimizer(0.1, 0.9), tf.train.AdamOptimizer(0.1)
    train = tf.group(momentum.minimize(loss), adam.minimize(loss))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(train)
        np.testing.assert_allclose(sess.run(momentum.get_slot(w, "momentum")), [2.0, 4.0])
        np.testing.assert_allclose(sess.run(adam.get_slot(w, "m")), [0.2, 0.4], rtol=1e-5)
        # both updates applied: w - 0.1 * g (momentum) - 0.1 * sign(g) (Adam's first step)
        np.testing.assert_allclose(sess.run(w), [0.7, 1.5], rtol=1e-5)


# ----------------------------------------------------------------------------- nn losses and dropout


def stable_xent(labels, logits):
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -(labels * log_p).sum(-1)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits_np = np.array([[1e4, 0.0, -1e4], [3.0, 1e4, 1e4 - 2.0], [0.1, 0.2, 0.3]], np.float32)
    labels_np = np.array([[0.0, 1.0, 0.0], [0.2, 0.5, 0.3], [1.0, 0.0, 0.0]], np.float32)
    logits = tf.constant(logits_np)
    labels = tf.constant(labels_np)
    loss = tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
    (grad,) = tf.gradients(tf.reduce_sum(loss), [logits])
    with tf.Session() as sess:
        got, got_grad = sess.run([loss, grad])
    assert np.isfinite(got).all() and np.isfinite(got_grad).all()
    np.testing.assert_allclose(got, stable_xent(labels_np.astype(np.float64), logits_np.astype(np.float64)),
                               rtol=1e-5)
    shifted = np.exp(logits_np.astype(np.float64) - logits_np.max(-1, keepdims=True))
    softmax = shifted / shifted.sum(-1, keepdims=True)
    np.testing.assert_allclose(got_grad, softmax - labels_np, atol=1e-6)


def test_sparse_cross_entropy_equals_dense_on_one_hot_labels():
    rng = np.random.RandomState(0)
    logits_np = (rng.randn(6, 5) * 10).astype(np.float32)
    classes = np.array([0, 4, 2, 2, 1, 3], np.int32)
    logits = tf.constant(logits_np)
    sparse = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=logits)
    dense = tf.nn.softmax_cross_entropy_with_logits(labels=np.eye(5, dtype=np.float32)[classes], logits=logits)
    with tf.Session() as sess:
        got_sparse, got_dense = sess.run([sparse, dense])
    np.testing.assert_allclose(got_sparse, got_dense, rtol=1e-6)
    np.testing.assert_allclose(got_sparse, stable_xent(np.eye(5)[classes], logits_np.astype(np.float64)),
                               rtol=1e-5)


def test_l2_loss():
    t = np.array([[1.0, -2.0], [3.0, 0.5]], np.float32)
    with tf.Session() as sess:
        assert sess.run(tf.nn.l2_loss(tf.constant(t))) == pytest.approx((t ** 2).sum() / 2)


def test_dropout_keep_prob_one_is_identity():
    x = tf.constant(np.ones((4, 4), np.float32))
    assert tf.nn.dropout(x, keep_prob=1.0) is x
    assert tf.nn.dropout(x, rate=0.0) is x


@pytest.mark.parametrize("kwargs", [{"keep_prob": 0.5}, {"rate": 0.5}], ids=["keep_prob", "rate"])
def test_dropout_keeps_about_half_scaled_by_two(kwargs):
    x = tf.constant(np.full((100, 100), 3.0, np.float32))
    dropped = tf.nn.dropout(x, seed=1, **kwargs)
    with tf.Session() as sess:
        first, second = sess.run(dropped), sess.run(dropped)
    assert set(np.unique(first)) <= {0.0, 6.0}
    assert 0.45 < (first != 0).mean() < 0.55
    assert not np.array_equal(first, second)  # a fresh mask every run


# ----------------------------------------------------------------------------- failed steps change nothing


def embedding_model():
    """Adam on a model that gathers rows of an embedding: a bad index or a bad feed must fail the step."""
    tf.set_random_seed(0)
    emb = tf.Variable(tf.random_uniform([5, 3]), name="emb")
    idx = tf.placeholder(tf.int32, [None], name="idx")
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    W = tf.Variable(tf.truncated_normal([3, 2]), name="W")
    loss = tf.reduce_mean(tf.square(tf.matmul(tf.gather(emb, idx) * x, W) - 1.0))
    step = tf.train.get_or_create_global_step()
    opt = tf.train.AdamOptimizer(0.1)
    train = opt.minimize(loss, global_step=step)
    return idx, x, train


GOOD_FEED = {"idx": [0, 3, 4], "x": np.ones((3, 3), np.float32)}


@pytest.mark.parametrize("bad, error, match", [
    ({"idx": [0, 7, 1]}, tf.errors.InvalidArgumentError, "index 7 is out of range"),
    ({"idx": [0, -6, 1]}, tf.errors.InvalidArgumentError, "out of range"),
    ({"x": np.ones((3, 4), np.float32)}, ValueError, r"Cannot feed value of shape \(3, 4\) for Tensor 'x:0'"),
    ({"x": np.ones((2, 3), np.float32)}, ValueError, r"\(3, 3\).*\(2, 3\)|\(2, 3\).*\(3, 3\)"),
], ids=["index-too-large", "index-negative", "feed-shape", "batch-mismatch"])
def test_failed_step_leaves_every_variable_and_slot_unchanged(bad, error, match):
    idx, x, train = embedding_model()
    placeholders = {"idx": idx, "x": x}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(2):  # Adam's m, v and beta powers move away from their initial values
            sess.run(train, {placeholders[k]: v for k, v in GOOD_FEED.items()})
        variables = tf.global_variables()
        assert {v.op.name for v in variables} >= {"emb/Adam_m", "emb/Adam_v", "W/Adam_m", "W/Adam_v",
                                                  "beta1_power", "beta2_power", "global_step"}
        before = sess.run(variables)
        feed = {placeholders[k]: v for k, v in {**GOOD_FEED, **bad}.items()}
        with pytest.raises(error, match=match):
            sess.run(train, feed)
        after = sess.run(variables)
        for var, old, new in zip(variables, before, after):
            np.testing.assert_array_equal(new, old, err_msg=var.name)
        sess.run(train, {placeholders[k]: v for k, v in GOOD_FEED.items()})  # the session still trains
        assert sess.run(tf.train.get_global_step()) == 3


def test_a_weight_update_is_one_gemm_writing_the_variable_in_place_and_a_failed_step_writes_nothing():
    # W - lr * x^T @ dy becomes one matmul_add (the `gemm` pass); once the session's array of W is
    # held by nothing else, the runtime has the gemm update it in place, as the run's last step.
    # (W is large enough that no native driver runs the step: a driver updates nothing in place.)
    import weakref

    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((32, 300)).astype(np.float32)
    c0 = rng.standard_normal((32, 200)).astype(np.float32)
    W = tf.Variable(rng.standard_normal((300, 200)).astype(np.float32), name="W")
    x = tf.placeholder(tf.float32, [32, 300], name="x")
    idx = tf.placeholder(tf.int32, [None], name="idx")
    scale = tf.reduce_sum(tf.gather(tf.constant([1.0, 2.0]), idx))  # 3 for idx [0, 1]
    loss = tf.reduce_sum(tf.matmul(x, W) * c0) * scale
    train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        held = sess.run(W)  # a value the caller holds never changes
        initial = held.copy()
        want, buffers = held.copy(), []
        for _ in range(4):
            sess.run(train, {x: x0, idx: [0, 1]})
            want = want - np.float32(1.5) * (x0.T @ c0)
            buffers.append(weakref.ref(sess._store[W]))  # (a strong reference would stop the update in place)
        np.testing.assert_allclose(sess.run(W), want, rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(held, initial)
        assert buffers[1]() is buffers[2]() is buffers[3]() is sess._store[W]  # one buffer from the second step on
        before = sess.run(W)
        with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
            sess.run(train, {x: x0, idx: [0, 5]})  # fails in the gather, before the update
        np.testing.assert_array_equal(sess.run(W), before)
        assert buffers[3]() is sess._store[W]


def test_an_update_reading_its_own_variable_in_the_product_is_not_done_in_place():
    # W <- W - 0.01 W^T W: BLAS would read W while it overwrites it, so the result goes elsewhere.
    rng = np.random.default_rng(1)
    start = rng.standard_normal((200, 200)).astype(np.float32) * 0.1
    W = tf.Variable(start)
    step = W.assign(W - 0.01 * tf.matmul(W, W, transpose_a=True))
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        want = start.astype(np.float64)
        for _ in range(3):
            sess.run(step)
            want = want - 0.01 * want.T @ want
        np.testing.assert_allclose(sess.run(W), want, rtol=1e-4, atol=1e-5)
