"""fold: constant folding through the numpy reference interpreter.

Guarantees afterwards: no op whose operands are all constants remains, unless
it is stateful (random numbers), has regions, would make a constant larger than
`FOLD_LIMIT` elements (huge constants are not materialised: a broadcast of a
scalar stays a kernel), or its reference raises (the error then happens at run
time, where the user expects it).
"""

from __future__ import annotations

import numpy as np

from fuseflow.ir.core import Function, Module, Op
from fuseflow.ir.opdefs import OPS
from fuseflow.passes.rewrite import constant_value, map_functions, rewrite_function

FOLD_LIMIT = 1 << 16


def fold_rule(b, op: Op, operands):
    if op.regions or op.name not in OPS or op.name == "constant":
        return None
    opdef = OPS[op.name]
    if opdef.stateful or opdef.reference is None or opdef.category == "control":
        return None
    if any(not r.type.is_static or r.type.size > FOLD_LIMIT for r in op.results):
        return None
    values = [constant_value(v) for v in operands]
    if any(v is None for v in values):
        return None
    try:
        outs = opdef.reference(*values, **op.attrs)
    except (ArithmeticError, ValueError, IndexError, TypeError):
        return None
    outs = outs if isinstance(outs, tuple) else (outs,)
    return tuple(b.constant(np.asarray(o, dtype=r.type.dtype.np).reshape(r.type.shape))
                 for o, r in zip(outs, op.results))


def fold_function(fn: Function) -> Function:
    return rewrite_function(fn, fold_rule)


def fold(module: Module) -> Module:
    """Replaces ops over constants by their value (see the module docstring for what stays)."""
    return map_functions(module, fold_function)
