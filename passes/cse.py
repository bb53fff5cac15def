"""cse: common subexpression elimination.

Guarantees afterwards: no two ops of a block have the same name, attributes,
result types, device and operands (operands of commutative ops compared as a set);
equal constants are one op. Stateful ops (random numbers) and ops with regions
never merge.
"""

from __future__ import annotations

from fuseflow.ir.core import Function, Module, Op, attr_key
from fuseflow.ir.opdefs import OPS
from fuseflow.passes.rewrite import clone, map_functions, rewrite_function


def _key(op: Op, operands):
    ids = tuple(id(v) for v in operands)
    if OPS[op.name].commutative:
        ids = tuple(sorted(ids))
    attrs = tuple((k, attr_key(v)) for k, v in op.attrs.items())
    return (op.name, ids, attrs, tuple(r.type for r in op.results), op.device)


def cse_function(fn: Function) -> Function:
    seen: dict = {}

    def rule(b, op: Op, operands):
        if op.regions or op.name not in OPS or OPS[op.name].stateful:
            return None
        key = _key(op, operands)
        if key in seen:
            return seen[key]
        seen[key] = clone(b, op, operands)
        return seen[key]

    return rewrite_function(fn, rule)


def cse(module: Module) -> Module:
    """Merges equal pure ops (see the module docstring)."""
    return map_functions(module, cse_function)
