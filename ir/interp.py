"""The numpy reference interpreter: the semantics every compiled path is tested against."""

from __future__ import annotations

import numpy as np

from fuseflow.ir import opdefs
from fuseflow.ir.core import Block, Function, Module


def run_block(block: Block, args) -> tuple:
    """Evaluates `block` on numpy `args`; returns the terminator's operand values."""
    env = {a: np.asarray(x) for a, x in zip(block.args, args)}
    for op in block.ops[:-1]:
        inputs = [env[v] for v in op.operands]
        if op.name == "fused":
            outs = run_block(op.regions[0], inputs)
        else:
            outs = opdefs.get(op.name).reference(*inputs, **op.attrs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for r, o in zip(op.results, outs):
            env[r] = np.asarray(o, dtype=r.type.dtype.np).reshape(r.type.shape)
    return tuple(env[v] for v in block.terminator.operands)


def run_function(fn: Function, *args) -> tuple:
    return run_block(fn.body, args)


def run(module: Module, *args) -> tuple:
    """Runs ``@main`` of `module` on numpy arrays."""
    return run_function(module.main, *args)
