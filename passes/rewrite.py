"""The one rewriter API: rebuild a function op by op, letting a rule replace ops.

IR is immutable, so a pass makes a new function: `rewrite_function` walks the
ops in order, maps every old operand to its new value, and asks `rule(b, op,
operands)` for replacement values (or ``None`` to keep the op, cloned over the
new operands). Rules see already-rewritten operands, so rewrites compose in one
walk.
"""

from __future__ import annotations

from collections.abc import Callable

from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Function, Module, Op, Value


def clone(b: Builder, op: Op, operands) -> tuple:
    """Appends a copy of `op` over `operands` (same attrs, result types, regions, location and device)."""
    new = Op(op.name, operands, op.attrs, [r.type for r in op.results], op.regions, op.loc, op.device)
    b.block.ops.append(new)
    return new.results


def rewrite_function(fn: Function, rule: Callable | None) -> Function:
    """A new function: each op replaced by ``rule(b, op, operands)`` or cloned when it returns None."""
    b = Builder([a.type for a in fn.args])
    mapping: dict[Value, Value] = dict(zip(fn.args, b.args))
    for op in fn.ops[:-1]:
        operands = tuple(mapping[v] for v in op.operands)
        b.loc, b.device = op.loc, op.device
        out = rule(b, op, operands) if rule else None
        if out is None:
            out = clone(b, op, operands)
        elif isinstance(out, Value):
            out = (out,)
        for old, new in zip(op.results, out):
            mapping[old] = new
    return b.finish([mapping[v] for v in fn.results], fn.name)


def map_functions(module: Module, transform: Callable[[Function], Function]) -> Module:
    return Module([transform(fn) for fn in module.functions.values()])


def constant_value(v: Value):
    """The array a value holds when it is defined by a ``constant`` op, else None."""
    op = v.owner
    return op.attrs["value"] if isinstance(op, Op) and op.name == "constant" else None


def defining(v: Value, name: str):
    """The op that defines `v` when it is a `name` op, else None."""
    op = v.owner
    return op if isinstance(op, Op) and op.name == name else None


def users(fn: Function) -> dict:
    """Value -> list of ops (in the function body) that use it; the terminator included."""
    table: dict[Value, list] = {}
    for op in fn.ops:
        for v in op.operands:
            table.setdefault(v, []).append(op)
    return table
