"""fuseflow.grad / value_and_grad / jvp / vjp on plain and jitted functions, against finite differences."""

import numpy as np
import pytest

import fuseflow

RNG = np.random.default_rng(1)


def central_difference(f, args, argnum, eps=1e-6):
    """d f(args) / d args[argnum] for a scalar f, by central differences in float64."""
    x = np.array(args[argnum], dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        hi = list(args)
        hi[argnum] = x + step
        lo = list(args)
        lo[argnum] = x - step
        grad[i] = (f(*hi) - f(*lo)) / (2 * eps)
    return grad


def loss_tanh_layer(w, x):
    return np.sum(np.tanh(x @ w) ** 2)


def loss_softmax_xent(logits, labels):
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(np.sum(labels * log_p, axis=1))


def loss_broadcast(a, b):
    return np.sum(np.exp(a * b) / (1.0 + b * b))


CASES = [
    (loss_tanh_layer, lambda: (RNG.standard_normal((4, 3)), RNG.standard_normal((5, 4)))),
    (loss_softmax_xent, lambda: (RNG.standard_normal((6, 5)), np.eye(5)[RNG.integers(0, 5, 6)])),
    (loss_broadcast, lambda: (RNG.standard_normal((3, 1)), RNG.standard_normal((4,)))),
]


@pytest.mark.parametrize("f, make", CASES, ids=[c[0].__name__ for c in CASES])
def test_grad_matches_finite_differences(f, make):
    args = make()
    for argnum in range(len(args)):
        got = fuseflow.grad(f, argnums=argnum)(*args)
        np.testing.assert_allclose(got, central_difference(f, args, argnum), rtol=1e-6, atol=1e-8)


def test_grad_of_a_jitted_function_and_argnums_tuple():
    f = fuseflow.jit(loss_broadcast)
    a, b = RNG.standard_normal((3, 1)), RNG.standard_normal(4)
    value, (ga, gb) = fuseflow.value_and_grad(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(value, loss_broadcast(a, b), rtol=1e-12)
    np.testing.assert_allclose(ga, central_difference(loss_broadcast, (a, b), 0), rtol=1e-6)
    np.testing.assert_allclose(gb, central_difference(loss_broadcast, (a, b), 1), rtol=1e-6)


def test_has_aux():
    def f(x):
        y = np.sin(x)
        return np.sum(y * y), {"y": y}

    x = RNG.standard_normal(5)
    g, aux = fuseflow.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g, 2 * np.sin(x) * np.cos(x), rtol=1e-12)
    np.testing.assert_allclose(aux["y"], np.sin(x))


def test_second_derivative():
    d2 = fuseflow.grad(fuseflow.grad(lambda x: np.sin(x) * x**3))
    x = 0.7
    want = -np.sin(x) * x**3 + 6 * np.cos(x) * x**2 + 6 * x * np.sin(x)
    np.testing.assert_allclose(d2(x), want, rtol=1e-10)


def test_float32_gradient_keeps_float32():
    w = RNG.standard_normal((4, 3)).astype(np.float32)
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    g = fuseflow.grad(loss_tanh_layer)(w, x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, central_difference(loss_tanh_layer, (w.astype(float), x.astype(float)), 0),
                               rtol=2e-3, atol=1e-4)


def test_unused_argument_gets_zeros():
    g = fuseflow.grad(lambda x, y: np.sum(x * 2.0), argnums=1)(np.ones(3), np.ones(2))
    np.testing.assert_array_equal(g, np.zeros(2))


def test_grad_errors():
    with pytest.raises(TypeError, match="float scalar"):
        fuseflow.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="argument 0 has dtype int64"):
        fuseflow.grad(lambda x: np.sum(x * 2))(np.ones(3, dtype=np.int64))


def test_jvp_matches_finite_differences():
    def f(x, y):
        return np.tanh(x) * y, np.sum(x * x)

    x, y = RNG.standard_normal(4), RNG.standard_normal(4)
    tx, ty = RNG.standard_normal(4), RNG.standard_normal(4)
    (out, total), (t_out, t_total) = fuseflow.jvp(f, (x, y), (tx, ty))
    np.testing.assert_allclose(total, np.sum(x * x))
    eps = 1e-6
    hi, lo = f(x + eps * tx, y + eps * ty), f(x - eps * tx, y - eps * ty)
    np.testing.assert_allclose(out, np.tanh(x) * y)
    np.testing.assert_allclose(t_out, (hi[0] - lo[0]) / (2 * eps), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(t_total, (hi[1] - lo[1]) / (2 * eps), rtol=1e-6)


def test_vjp_matches_the_transposed_jacobian():
    x = RNG.standard_normal(3)
    out, pullback = fuseflow.vjp(lambda x: np.sin(x) * x, x)
    ct = RNG.standard_normal(3)
    (g,) = pullback(ct)
    np.testing.assert_allclose(out, np.sin(x) * x)
    np.testing.assert_allclose(g, ct * (np.cos(x) * x + np.sin(x)), rtol=1e-12)


def test_hessian_vector_product_forward_over_reverse_equals_reverse_over_reverse():
    def f(x):
        return np.sum(np.exp(x) * np.sin(x))

    x, v = RNG.standard_normal(4), RNG.standard_normal(4)
    _, fwd_over_rev = fuseflow.jvp(fuseflow.grad(f), (x,), (v,))
    rev_over_rev = fuseflow.grad(lambda x, v: np.sum(fuseflow.grad(f)(x) * v))(x, v)
    want = 2 * np.exp(x) * np.cos(x) * v  # d2/dx2 of e^x sin x is 2 e^x cos x
    np.testing.assert_allclose(fwd_over_rev, want, rtol=1e-10)
    np.testing.assert_allclose(rev_over_rev, want, rtol=1e-10)
