"""autodiff: expands ``gradients`` (reverse mode) and ``jvp`` (forward mode) ops into ordinary ops.

Guarantees afterwards: no ``gradients`` or ``jvp`` op remains; each was replaced
by the ops its derivative rules (`fuseflow.passes.derivatives`) emit, over the
ops of the function that lie between its inputs and outputs. Ops are expanded
in order, so a ``gradients`` op over the expansion of an earlier one gives
higher derivatives. Cotangents of a value used several times add up. A
derivative that no path carries is zero. ``stop_gradient`` blocks derivatives
and is then removed (it is the identity).
"""

from __future__ import annotations

import numpy as np

from fuseflow.ir.core import Function, Module, Op
from fuseflow.passes.derivatives import JVP, VJP
from fuseflow.passes.rewrite import map_functions, rewrite_function


def _zeros(b, v):
    return b.op("broadcast_to", b.constant(np.zeros((), v.dtype.np)), shape=v.type.shape)


def _between(ops, sources, sinks) -> list[Op]:
    """The ops on some path from `sources` to `sinks`, in order."""
    reached = set(sources)
    forward = []
    for op in ops:
        if op.name != "stop_gradient" and any(v in reached for v in op.operands):
            reached.update(op.results)
            forward.append(op)
    needed = set(sinks)
    path = []
    for op in reversed(forward):
        if any(r in needed for r in op.results):
            needed.update(op.operands)
            path.append(op)
    return path[::-1]


def expand_gradients(b, op: Op, operands) -> list:
    ny, nx = op.attrs["num_ys"], op.attrs["num_xs"]
    ys, xs, grad_ys = operands[:ny], operands[ny:ny + nx], operands[ny + nx:]
    ct: dict = {}
    for i, y in enumerate(ys):
        g = grad_ys[i] if grad_ys else b.op("broadcast_to", b.constant(np.ones((), y.dtype.np)), shape=y.type.shape)
        ct[y] = g if y not in ct else b.op("add", ct[y], g)
    for node in reversed(_between(list(b.block.ops), xs, ys)):
        g = ct.get(node.results[0])
        if g is None or node.name not in VJP:
            continue
        for v, gv in zip(node.operands, VJP[node.name](b, node, g)):
            if gv is not None:
                ct[v] = gv if v not in ct else b.op("add", ct[v], gv)
    return [ct[x] if x in ct else _zeros(b, x) for x in xs]


def expand_jvp(b, op: Op, operands) -> list:
    ny, nx = op.attrs["num_ys"], op.attrs["num_xs"]
    ys, xs, tangents = operands[:ny], operands[ny:ny + nx], operands[ny + nx:]
    tan = dict(zip(xs, tangents))
    for node in _between(list(b.block.ops), xs, ys):
        if node.name not in JVP:
            continue
        t = JVP[node.name](b, node, [tan.get(v) for v in node.operands])
        if t is not None:
            tan[node.results[0]] = t
    return [tan[y] if y in tan else _zeros(b, y) for y in ys]


def autodiff_rule(b, op: Op, operands):
    if op.name == "gradients":
        return tuple(expand_gradients(b, op, operands))
    if op.name == "jvp":
        return tuple(expand_jvp(b, op, operands))
    return None


def _drop_stop_gradient(b, op: Op, operands):
    return operands[0] if op.name == "stop_gradient" else None


def autodiff_function(fn: Function) -> Function:
    if not any(op.name in ("gradients", "jvp", "stop_gradient") for op in fn.ops):
        return fn
    return rewrite_function(rewrite_function(fn, autodiff_rule), _drop_stop_gradient)


def autodiff(module: Module) -> Module:
    """Expands every ``gradients``/``jvp`` op (see the module docstring)."""
    return map_functions(module, autodiff_function)
