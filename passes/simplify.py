"""simplify: algebraic identities that are exact in IEEE arithmetic, and canonical operand order.

Guarantees afterwards: no op below matches a rule's left-hand side; every
commutative op has its non-constant operands first, in definition order, and
constants last. Each rule keeps the result type (a rule whose replacement would
broadcast differently or change the dtype does not fire). Not applied, because
they are not exact: ``exp(log x) -> x``, ``x + 0.0 -> x`` for floats (wrong for
x = -0.0), ``x * 0 -> 0`` (NaN, Inf, -0.0), ``reduce_sum``/``reduce_mean`` of a float over no
axes ``-> x`` (the sum starts from +0.0).
"""

from __future__ import annotations

import numpy as np

from fuseflow.ir.core import Function, Module, Op, Value
from fuseflow.ir.opdefs import OPS
from fuseflow.passes.rewrite import constant_value, defining, map_functions, rewrite_function


def _is_all(v: Value, value: float, negative_zero: bool = False) -> bool:
    """True when `v` is a constant whose every element equals `value` (and has the wanted zero sign)."""
    c = constant_value(v)
    if c is None or c.dtype == object or c.size == 0:
        return False
    if not np.all(c == value):
        return False
    if value == 0 and c.dtype.kind == "f":
        return bool(np.all(np.signbit(c) == negative_zero))
    return True


def _same_type(op: Op, v: Value):
    """`v` can stand for `op`'s result only if it has exactly the result's type."""
    return v if v.type == op.results[0].type else None


def _identity(op, x, y):
    # x*1 -> x, 1*x -> x, x/1 -> x, x-(+0) -> x, x+(-0.0) -> x (ints: x+0 -> x, x-0 -> x)
    is_int = op.results[0].dtype.is_integer
    if op.name == "mul":
        return _same_type(op, x) if _is_all(y, 1) else _same_type(op, y) if _is_all(x, 1) else None
    if op.name == "div" and _is_all(y, 1):
        return _same_type(op, x)
    if op.name == "sub" and (_is_all(y, 0) if is_int else _is_all(y, 0, negative_zero=False)):
        return _same_type(op, x)
    if op.name == "add":
        if _is_all(y, 0, negative_zero=not is_int):
            return _same_type(op, x)
        if _is_all(x, 0, negative_zero=not is_int):
            return _same_type(op, y)
    return None


def _unary_rules(b, op, x):
    inner = x.owner if isinstance(x.owner, Op) else None
    if op.name == "neg" and inner is not None and inner.name == "neg":  # neg(neg x) -> x
        return inner.operands[0]
    if op.name == "cast" and x.dtype == op.results[0].dtype:  # cast to the same dtype -> x
        return x
    if op.name in ("reshape", "broadcast_to") and x.type == op.results[0].type:  # reshape to own shape -> x
        return x
    if op.name == "reshape" and defining(x, "reshape"):  # reshape(reshape x) -> reshape x (-> x at x's own type)
        inner = x.owner.operands[0]
        return inner if inner.type == op.results[0].type else b.op("reshape", inner, shape=op.attrs["shape"])
    if op.name == "transpose":
        perm = op.attrs["perm"]
        if defining(x, "transpose"):  # transpose(transpose x) -> transpose x with the composed perm
            inner_perm = x.owner.attrs["perm"]
            perm = tuple(inner_perm[p] for p in perm)
            x = x.owner.operands[0]
        if perm == tuple(range(len(perm))):  # transpose by the identity -> x
            return x
        if perm != op.attrs["perm"]:
            return b.op("transpose", x, perm=perm)
    # a reduction over no axes -> x; not float sums and means: they add x to +0.0, so -0.0 -> +0.0
    exact = op.name in ("reduce_max", "reduce_min", "reduce_prod") or not x.dtype.is_floating
    if OPS[op.name].category == "reduction" and op.name.startswith("reduce_") and not op.attrs["axes"] and exact:
        return x
    return None


def _pow_square(b, op, x, y):
    # x ** 2 -> x * x (both correctly rounded)
    if op.name == "pow" and _is_all(y, 2) and x.type == op.results[0].type:
        return b.op("mul", x, x)
    return None


class _Positions:
    """The definition order of the values of the block a rewrite builds (indexed lazily as it grows)."""

    def __init__(self) -> None:
        self.index: dict = {}
        self.indexed_ops = 0

    def __call__(self, b, v: Value) -> int:
        if not self.index:
            self.index.update((a, i) for i, a in enumerate(b.args))
        ops = b.block.ops
        for op in ops[self.indexed_ops:]:
            for r in op.results:
                self.index[r] = len(self.index)
        self.indexed_ops = len(ops)
        return self.index[v]


def _canonical_order(b, op, operands, position=None):
    """Commutative ops: non-constants first in definition order (when `position` is given), constants last."""
    if not OPS[op.name].commutative or len(operands) != 2:
        return operands
    x, y = operands
    if constant_value(x) is not None and constant_value(y) is None:
        return (y, x)
    if position is not None and constant_value(x) is None and constant_value(y) is None \
            and position(b, y) < position(b, x):
        return (y, x)
    return operands


def simplify_rule(b, op: Op, operands, position=None):
    if op.regions or op.name not in OPS:
        return None
    given, operands = operands, _canonical_order(b, op, operands, position)
    if len(operands) == 1:
        return _unary_rules(b, op, operands[0])
    if len(operands) == 2 and OPS[op.name].category == "elementwise":
        found = _identity(op, *operands) or _pow_square(b, op, *operands)
        if found is not None:
            return found
    if operands != given:
        return b.op(op.name, *operands, **op.attrs)
    return None


def simplify_function(fn: Function) -> Function:
    position = _Positions()
    return rewrite_function(fn, lambda b, op, operands: simplify_rule(b, op, operands, position))


def simplify(module: Module) -> Module:
    """Applies the exact algebraic identities and canonical operand order (see the module docstring)."""
    return map_functions(module, simplify_function)
