"""Derivative rules, registered by op name: one partial-derivative table serves both modes.

Elementwise ops give their partial derivatives (`PARTIALS`): reverse mode
multiplies the cotangent by each partial (summing over broadcast dims),
forward mode sums tangents times partials. A partial is a value, ``None``
(zero), or a `Where` (the derivative is 1 where a condition holds and 0
elsewhere, applied with ``select`` so a NaN or Inf elsewhere never leaks in).
Other ops have a VJP (`VJP`) and a JVP (`JVP`) rule of their own. Ops in
`NOT_DIFFERENTIABLE` pass no derivative (integer, boolean or piecewise-constant
results). A test walks the op table: every other op needs a rule here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fuseflow.ir.core import Op
from fuseflow.ir.opdefs import broadcast_shapes, normalized_axes

NOT_DIFFERENTIABLE = {
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
    "logical_not", "argmax", "argmin", "iota", "constant", "random_uniform", "random_normal",
    "random_truncated_normal", "floor", "ceil", "round", "sign", "floor_div", "stop_gradient",
    "return", "yield", "fused", "gradients", "jvp",
}


@dataclass(frozen=True)
class Where:
    """A partial derivative that is 1 where `cond` is `value` and 0 elsewhere."""

    cond: object
    value: bool = True


def const(b, value, like):
    return b.constant(np.array(value, dtype=like.dtype.np))


def unbroadcast(b, g, shape):
    """Sums `g` over the dims numpy broadcasting added or stretched to reach its shape from `shape`."""
    if g.type.shape == tuple(shape):
        return g
    lead = len(g.type.shape) - len(shape)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape) if d == 1 and g.type.shape[lead + i] != 1]
    if axes:
        g = b.op("reduce_sum", g, axes=tuple(axes), keepdims=False)
    return g if g.type.shape == tuple(shape) else b.op("reshape", g, shape=tuple(shape))


def widen(b, g, shape):
    return g if g.type.shape == tuple(shape) else b.op("broadcast_to", g, shape=tuple(shape))


# ----------------------------------------------------------------------------- elementwise partials


def _unary(fn):
    return lambda b, op, x, y: (fn(b, x, y),)


PARTIALS = {
    "neg": _unary(lambda b, x, y: const(b, -1, x)),
    "abs": _unary(lambda b, x, y: b.op("sign", x)),
    "sqrt": _unary(lambda b, x, y: b.op("div", const(b, 0.5, x), y)),
    "rsqrt": _unary(lambda b, x, y: b.op("mul", const(b, -0.5, x), b.op("mul", y, b.op("mul", y, y)))),
    "exp": _unary(lambda b, x, y: y),
    "log": _unary(lambda b, x, y: b.op("reciprocal", x)),
    "log1p": _unary(lambda b, x, y: b.op("reciprocal", b.op("add", x, const(b, 1, x)))),
    "tanh": _unary(lambda b, x, y: b.op("sub", const(b, 1, x), b.op("mul", y, y))),
    "sigmoid": _unary(lambda b, x, y: b.op("mul", y, b.op("sub", const(b, 1, x), y))),
    "sin": _unary(lambda b, x, y: b.op("cos", x)),
    "cos": _unary(lambda b, x, y: b.op("neg", b.op("sin", x))),
    "reciprocal": _unary(lambda b, x, y: b.op("neg", b.op("mul", y, y))),
    "broadcast_to": _unary(lambda b, x, y: None),  # handled by its own rules; listed for completeness
    "add": lambda b, op, x, y: (const(b, 1, x), const(b, 1, x)),
    "sub": lambda b, op, x, y: (const(b, 1, x), const(b, -1, x)),
    "mul": lambda b, op, x, y: (op.operands[1], op.operands[0]),
    "div": lambda b, op, x, y: (b.op("reciprocal", op.operands[1]),
                                b.op("neg", b.op("div", y, op.operands[1]))),
    "floor_mod": lambda b, op, x, y: (const(b, 1, x), b.op("neg", b.op("floor_div", x, op.operands[1]))),
    "maximum": lambda b, op, x, y: (Where(b.op("greater_equal", x, op.operands[1])),
                                    Where(b.op("greater_equal", x, op.operands[1]), False)),
    "minimum": lambda b, op, x, y: (Where(b.op("less_equal", x, op.operands[1])),
                                    Where(b.op("less_equal", x, op.operands[1]), False)),
    "select": lambda b, op, x, y: (None, Where(x), Where(x, False)),
}


def _pow_partials(b, op, x, y):
    p = op.operands[1]
    dx = b.op("mul", p, b.op("pow", x, b.op("sub", p, const(b, 1, p))))
    positive = b.op("greater", x, const(b, 0, x))
    safe_log = b.op("log", b.op("select", positive, x, const(b, 1, x)))
    return dx, b.op("mul", y, b.op("select", positive, safe_log, const(b, 0, x)))


PARTIALS["pow"] = _pow_partials
del PARTIALS["broadcast_to"]


def _scale(b, g, partial, shape):
    """`g` times one partial derivative, summed back to `shape`."""
    if partial is None:
        return None
    if isinstance(partial, Where):
        zero = const(b, 0, g)
        full = widen(b, g, broadcast_shapes(g.type.shape, partial.cond.type.shape))
        g = b.op("select", partial.cond, full, zero) if partial.value else b.op("select", partial.cond, zero, full)
    else:
        g = b.op("mul", g, partial)
    return unbroadcast(b, g, shape)


def vjp_elementwise(b, op, ct):
    partials = PARTIALS[op.name](b, op, op.operands[0], op.results[0])
    return [_scale(b, ct, p, v.type.shape) if v.dtype.is_floating else None
            for p, v in zip(partials, op.operands)]


def jvp_elementwise(b, op, tangents):
    partials = PARTIALS[op.name](b, op, op.operands[0], op.results[0])
    out = op.results[0].type.shape
    total = None
    for p, t in zip(partials, tangents):
        if t is None or p is None:
            continue
        term = _scale(b, widen(b, t, out), p, out)
        total = term if total is None else b.op("add", total, term)
    return total


# ----------------------------------------------------------------------------- other ops: VJP

VJP = {}
JVP = {}


def rule(table, *names):
    def deco(fn):
        for n in names:
            table[n] = fn
        return fn

    return deco


@rule(VJP, "cast")
def _vjp_cast(b, op, ct):
    x = op.operands[0]
    return [b.op("cast", ct, dtype=x.dtype) if x.dtype.is_floating else None]


@rule(VJP, "broadcast_to")
def _vjp_broadcast(b, op, ct):
    return [unbroadcast(b, ct, op.operands[0].type.shape)]


def _kept(b, g, op):
    """A reduction's cotangent reshaped to keepdims form and broadcast over the operand."""
    x = op.operands[0]
    axes = normalized_axes(op)
    keep = tuple(1 if i in axes else d for i, d in enumerate(x.type.shape))
    return widen(b, b.op("reshape", g, shape=keep) if g.type.shape != keep else g, x.type.shape), axes


@rule(VJP, "reduce_sum")
def _vjp_sum(b, op, ct):
    return [_kept(b, ct, op)[0]]


@rule(VJP, "reduce_mean")
def _vjp_mean(b, op, ct):
    g, axes = _kept(b, ct, op)
    count = int(np.prod([op.operands[0].type.shape[a] for a in axes]))
    return [b.op("div", g, const(b, max(count, 1), g))]


def _extreme_mask(b, op):
    x = op.operands[0]
    y, axes = _kept(b, op.results[0], op)
    mask = b.op("equal", x, y)
    n = b.op("reduce_sum", b.op("cast", mask, dtype=x.dtype), axes=axes, keepdims=True)
    return mask, n, axes


@rule(VJP, "reduce_max", "reduce_min")
def _vjp_extreme(b, op, ct):
    # Ties share the cotangent equally (as TF does).
    mask, n, _ = _extreme_mask(b, op)
    g, _ = _kept(b, ct, op)
    share = b.op("div", g, widen(b, n, g.type.shape))
    return [b.op("select", mask, share, const(b, 0, g))]


def _prod_of_others(b, op):
    """Per element, the product of the other elements of its reduction (exact with zeros)."""
    x = op.operands[0]
    axes = normalized_axes(op)
    zero = b.op("equal", x, const(b, 0, x))
    zeros = b.op("reduce_sum", b.op("cast", zero, dtype=x.dtype), axes=axes, keepdims=True)
    nonzero_prod = b.op("reduce_prod", b.op("select", zero, const(b, 1, x), x), axes=axes, keepdims=True)
    shape = x.type.shape
    full = widen(b, nonzero_prod, shape)
    count = widen(b, zeros, shape)
    no_zero = b.op("div", full, b.op("select", zero, const(b, 1, x), x))
    one_zero_here = b.op("select", zero, full, const(b, 0, x))
    is_none = b.op("equal", count, const(b, 0, x))
    is_one = b.op("equal", count, const(b, 1, x))
    return b.op("select", is_none, no_zero, b.op("select", is_one, one_zero_here, const(b, 0, x)))


@rule(VJP, "reduce_prod")
def _vjp_prod(b, op, ct):
    g, _ = _kept(b, ct, op)
    return [b.op("mul", g, _prod_of_others(b, op))]


@rule(VJP, "matmul")
def _vjp_matmul(b, op, ct):
    a, w = op.operands
    ta, tb = op.attrs["transpose_a"], op.attrs["transpose_b"]

    def mm(x, y, tx, ty):
        return b.op("matmul", x, y, transpose_a=tx, transpose_b=ty)

    if not ta:
        da = mm(ct, w, False, not tb)
    else:
        da = mm(w, ct, tb, True)
    if not tb:
        dw = mm(a, ct, not ta, False)
    else:
        dw = mm(ct, a, True, ta)
    return [unbroadcast(b, da, a.type.shape), unbroadcast(b, dw, w.type.shape)]


def _product_of(op):
    """The plain ``matmul`` inside a ``matmul_add`` (a stand-in op for the matmul rules, never emitted)."""
    attrs = {"transpose_a": op.attrs["transpose_a"], "transpose_b": op.attrs["transpose_b"]}
    return Op("matmul", op.operands[:2], attrs, [op.results[0].type])


@rule(VJP, "matmul_add")
def _vjp_matmul_add(b, op, ct):
    scaled = b.op("mul", ct, const(b, op.attrs["alpha"], ct))
    return [*_vjp_matmul(b, _product_of(op), scaled), ct]


@rule(VJP, "reshape")
def _vjp_reshape(b, op, ct):
    return [b.op("reshape", ct, shape=op.operands[0].type.shape)]


@rule(VJP, "transpose")
def _vjp_transpose(b, op, ct):
    perm = op.attrs["perm"]
    return [b.op("transpose", ct, perm=tuple(int(i) for i in np.argsort(perm)))]


@rule(VJP, "slice")
def _vjp_slice(b, op, ct):
    return [b.op("scatter_slice", ct, shape=op.operands[0].type.shape, slices=op.attrs["slices"])]


@rule(VJP, "scatter_slice")
def _vjp_scatter_slice(b, op, ct):
    return [b.op("slice", ct, slices=op.attrs["slices"])]


@rule(VJP, "concat")
def _vjp_concat(b, op, ct):
    axis = op.attrs["axis"] % len(ct.type.shape)
    grads, start = [], 0
    for v in op.operands:
        n = v.type.shape[axis]
        slices = tuple((start, start + n, 1) if d == axis else (None, None, None) for d in range(len(v.type.shape)))
        grads.append(b.op("slice", ct, slices=slices) if v.dtype.is_floating else None)
        start += n
    return grads


@rule(VJP, "gather")
def _vjp_gather(b, op, ct):
    params, indices = op.operands
    return [b.op("scatter_add", ct, indices, shape=params.type.shape, axis=op.attrs["axis"]), None]


@rule(VJP, "scatter_add")
def _vjp_scatter_add(b, op, ct):
    return [b.op("gather", ct, op.operands[1], axis=op.attrs["axis"]), None]


# ----------------------------------------------------------------------------- other ops: JVP


@rule(JVP, "cast")
def _jvp_cast(b, op, ts):
    return b.op("cast", ts[0], dtype=op.attrs["dtype"]) if op.results[0].dtype.is_floating else None


@rule(JVP, "reduce_sum", "reduce_mean")
def _jvp_linear_reduction(b, op, ts):
    return b.op(op.name, ts[0], **op.attrs)


@rule(JVP, "reduce_max", "reduce_min")
def _jvp_extreme(b, op, ts):
    mask, n, axes = _extreme_mask(b, op)
    picked = b.op("reduce_sum", b.op("select", mask, ts[0], const(b, 0, ts[0])), axes=axes, keepdims=True)
    out = b.op("div", picked, n)
    return out if out.type.shape == op.results[0].type.shape else b.op("reshape", out,
                                                                        shape=op.results[0].type.shape)


@rule(JVP, "reduce_prod")
def _jvp_prod(b, op, ts):
    return b.op("reduce_sum", b.op("mul", ts[0], _prod_of_others(b, op)), **op.attrs)


@rule(JVP, "matmul")
def _jvp_matmul(b, op, ts):
    a, w = op.operands
    terms = []
    if ts[0] is not None:
        terms.append(b.op("matmul", ts[0], w, **op.attrs))
    if ts[1] is not None:
        terms.append(b.op("matmul", a, ts[1], **op.attrs))
    return terms[0] if len(terms) == 1 else b.op("add", *terms)


@rule(JVP, "matmul_add")
def _jvp_matmul_add(b, op, ts):
    terms = []
    if ts[0] is not None or ts[1] is not None:
        product = _jvp_matmul(b, _product_of(op), ts[:2])
        terms.append(b.op("mul", product, const(b, op.attrs["alpha"], product)))
    if ts[2] is not None:
        terms.append(ts[2])
    return terms[0] if len(terms) == 1 else b.op("add", *terms)


@rule(JVP, "reshape", "transpose", "slice", "scatter_slice", "broadcast_to")
def _jvp_linear(b, op, ts):
    return b.op(op.name, ts[0], **op.attrs)


@rule(JVP, "gather", "scatter_add")
def _jvp_indexed(b, op, ts):
    return b.op(op.name, ts[0], op.operands[1], **op.attrs) if ts[0] is not None else None


@rule(JVP, "concat")
def _jvp_concat(b, op, ts):
    parts = [t if t is not None else b.op("broadcast_to", const(b, 0, v), shape=v.type.shape)
             for t, v in zip(ts, op.operands)]
    return b.op("concat", *parts, **op.attrs)


@rule(VJP, "copy_to_device")
def _vjp_copy(b, op, ct):
    # The cotangent goes back where the operand lives (the host when its producer is unplaced).
    source = op.operands[0].owner
    back = getattr(source, "device", "") or "/device:CPU:0"
    return [b.op("copy_to_device", ct, device=back)]


@rule(JVP, "copy_to_device")
def _jvp_copy(b, op, ts):
    return b.op("copy_to_device", ts[0], **op.attrs)


for _name in PARTIALS:
    VJP[_name] = vjp_elementwise
    JVP[_name] = jvp_elementwise
