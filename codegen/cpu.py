"""The CPU backend: `compile_op` turns one IR op into a callable numba kernel.

``kernel = compile_op(op)`` for an op whose operand and result types are fully
static; ``kernel(*arrays)`` takes C-contiguous numpy arrays of exactly the operand
dtypes and returns a tuple with one new array per result (exact dtype and shape).
Every op of the table has a builder here except ``constant``, ``return`` and
``yield``, which the runtime handles itself. Kernels are generated source compiled
with numba and cached in memory (see `KERNEL_STATS`); float matmuls call BLAS.
"""

from __future__ import annotations

from collections.abc import Callable

from fuseflow.codegen import contraction, movement, reduce
from fuseflow.codegen.fused import REDUCTIONS, compile_fused, compile_single
from fuseflow.codegen.source import KERNEL_STATS
from fuseflow.ir.core import Op
from fuseflow.ir.opdefs import OPS

__all__ = ["BUILDERS", "KERNEL_STATS", "NOT_COMPILED", "compile_op"]

# Ops the runtime holds itself, and derivative requests the autodiff pass expands: no kernel.
NOT_COMPILED = frozenset({"constant", "return", "yield", "gradients", "jvp"})

BUILDERS: dict[str, Callable[[Op], Callable]] = {
    "fused": lambda op: compile_fused(op.regions[0]),
    "matmul": contraction.compile_matmul,
    "matmul_add": contraction.BlasMatmulAdd,
    "argmax": reduce.compile_arg_reduction,
    "argmin": reduce.compile_arg_reduction,
    **{name: compile_single for name in REDUCTIONS},
    **movement.BUILDERS,
    # A host-to-host copy (the runtime moves values between devices with `fuseflow.codegen.cuda.copy_kernel`).
    "copy_to_device": lambda op: lambda x: (x.copy(),),
    **{name: compile_single for name, d in OPS.items() if d.category == "elementwise"},
}


def compile_op(op: Op) -> Callable:
    """A callable kernel for `op`: ``kernel(*input_arrays) -> tuple of output arrays``."""
    if op.name in NOT_COMPILED:
        raise ValueError(f"op '{op.name}' has no kernel: the runtime handles it (or the autodiff pass expands it)")
    for v in op.operands + op.results:
        if not v.type.is_static:
            raise ValueError(f"cannot compile '{op.name}' with a non-static type {v.type}")
    try:
        builder = BUILDERS[op.name]
    except KeyError:
        raise NotImplementedError(f"the CPU backend has no kernel for op '{op.name}'") from None
    return builder(op)
