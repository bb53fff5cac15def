"""Function transforms on top of the IR autodiff: `grad`, `value_and_grad`, `jvp`, `vjp`.

Each builds a new Python function that calls `fun` on symbolic tensors and requests derivatives
with `fuseflow.gradients` / the forward-mode ``jvp`` op, and compiles it with `jit`; so the
derivative is ordinary IR, optimised and fused with the function, and differentiable again
(``grad(grad(f))``). `fun` may be a plain function or a `jit` one (its Python function is traced).
"""

from __future__ import annotations

import functools

from fuseflow.frontend import gradients as graph_ad
from fuseflow.frontend.array_ops import zeros_like
from fuseflow.frontend.core_ops import convert_to_tensor
from fuseflow.frontend.graph import Tensor
from fuseflow.frontend.numpy_api import as_typed
from fuseflow.jit import JitFunction, _flatten_out, jit


def _python(fun):
    return fun.__wrapped__ if isinstance(fun, JitFunction) else fun


def _static(fun) -> frozenset:
    return fun.static_argnums if isinstance(fun, JitFunction) else frozenset()


def _argnums(argnums, n: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"argnums {i} is out of range for a function called with {n} arguments")
    return tuple(i % n for i in nums)


def _float_inputs(args, nums, what: str) -> list:
    xs = []
    for i in nums:
        x = convert_to_tensor(args[i])
        if not x.dtype.is_floating:
            raise TypeError(f"{what} needs floating-point inputs: argument {i} has dtype {x.dtype.name} "
                            "(pass floats, e.g. 1.0 or a float32 array)")
        xs.append(x)
    return xs


def _grads_or_zeros(ys, xs, grad_ys=None) -> list:
    """`gradients`, with zeros where an x does not influence the ys (JAX's convention, not TF's None)."""
    grads = graph_ad.gradients(ys, xs, grad_ys=grad_ys)
    return [zeros_like(x) if g is None else g for g, x in zip(grads, xs)]


def value_and_grad(fun, argnums=0, has_aux=False):
    """A function returning ``(fun(*args), d fun / d args[argnums])``; `fun` must return a float scalar
    (or ``(scalar, aux)`` with `has_aux`)."""
    python = _python(fun)

    def traced(*args):
        xs = _float_inputs(args, _argnums(argnums, len(args)), "grad")
        out = python(*args)
        value, aux = out if has_aux else (out, None)
        value = convert_to_tensor(value)
        if value.shape.ndims != 0 or not value.dtype.is_floating:
            raise TypeError(f"grad needs a function returning a float scalar; {python.__name__} returned a tensor "
                            f"of dtype {value.dtype.name} and shape {value.shape}")
        grads = _grads_or_zeros([value], xs)
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        return ((value, aux), grads) if has_aux else (value, grads)

    functools.update_wrapper(traced, python)
    return jit(traced, static_argnums=_static(fun))


def grad(fun, argnums=0, has_aux=False):
    """A function returning the gradient of scalar `fun` with respect to ``args[argnums]``."""
    both = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(_python(fun))
    def gradient(*args):
        (value_aux, grads) = both(*args)
        return (grads, value_aux[1]) if has_aux else grads

    return gradient


def _leaves(out) -> list:
    fetches: list = []
    _flatten_out(out, fetches)
    return fetches


def jvp(fun, primals, tangents, name="jvp"):
    """Forward mode: ``(fun(*primals), the derivative of fun at primals along tangents)``.

    Given graph tensors instead of a function, ``jvp(ys, xs, tangents)`` is the graph op
    (`fuseflow.frontend.gradients.jvp`): the derivatives of `ys` along `tangents`.
    """
    if not callable(fun):
        return graph_ad.jvp(fun, primals, tangents, name=name)
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    python, n = _python(fun), len(primals)

    def traced(*args):
        xs = _float_inputs(args[:n], range(n), "jvp")
        out = python(*xs)
        ys = [y for y in _leaves(out) if isinstance(y, Tensor)]
        ts = [as_typed(t, x.dtype.np) for t, x in zip(args[n:], xs)]
        derivs = graph_ad.jvp(ys, xs, ts) if ys else []
        return out, derivs

    functools.update_wrapper(traced, python)
    out, derivs = jit(traced)(*primals, *tangents)
    return out, _like_structure(out, derivs)


def _like_structure(out, flat: list):
    """The flat list of derivatives arranged like `out` (a tensor, a tuple/list, a dict)."""
    if isinstance(out, dict):
        return dict(zip(out, flat))
    if isinstance(out, (list, tuple)):
        return type(out)(flat)
    return flat[0]


def vjp(fun, *primals):
    """``(fun(*primals), vjp_fn)``: ``vjp_fn(cotangent)`` is the tuple of cotangents of the primals."""
    python, n = _python(fun), len(primals)
    out = jit(python)(*primals)

    def pullback(*args):
        xs = _float_inputs(args[:n], range(n), "vjp")
        ys = [convert_to_tensor(y) for y in _leaves(python(*xs))]
        cts = [convert_to_tensor(c, dtype=y.dtype) for c, y in zip(args[n:], ys)]
        return tuple(_grads_or_zeros(ys, xs, grad_ys=cts))

    functools.update_wrapper(pullback, python)
    compiled = jit(pullback)

    def vjp_fn(cotangent):
        return compiled(*primals, *_flat_values(cotangent))

    return out, vjp_fn


def _flat_values(tree) -> list:
    if isinstance(tree, dict):
        return [v for value in tree.values() for v in _flat_values(value)]
    if isinstance(tree, (list, tuple)):
        return [v for value in tree for v in _flat_values(value)]
    return [tree]
