"""dce: dead code elimination.

Guarantees afterwards: every op left has a result that the function's
``return`` needs, directly or through other ops. Random ops whose draws are
unused go too: their run counters advance through their own state update.
"""

from __future__ import annotations

from fuseflow.ir.core import Function, Module
from fuseflow.passes.rewrite import map_functions, rewrite_function


def live_ops(fn: Function) -> set:
    needed = set(fn.results)
    live = set()
    for op in reversed(fn.ops[:-1]):
        if any(r in needed for r in op.results):
            live.add(op)
            needed.update(op.operands)
    return live


def dce_function(fn: Function) -> Function:
    live = live_ops(fn)
    dropped = object()

    def rule(b, op, operands):
        return None if op in live else tuple(dropped for _ in op.results)

    return rewrite_function(fn, rule)


def dce(module: Module) -> Module:
    """Removes ops whose results nothing returned depends on."""
    return map_functions(module, dce_function)
