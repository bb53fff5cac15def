"""argmax/argmin as generated loop nests (the other reductions compile as fused regions).

The outer loops walk the kept dims, the inner loop the reduced axis; the answer is
the first extreme index, a NaN counting as the extreme.
"""

from __future__ import annotations

import numpy as np

from fuseflow.codegen import scalar
from fuseflow.codegen.source import Source, array_arg, array_types, compile_kernel, kernel_header, subscript
from fuseflow.ir import dtypes as dt
from fuseflow.ir.core import Op


class ReductionKernel:
    """A compiled one-input, one-output kernel; call with the input array, get a 1-tuple."""

    def __init__(self, op: Op, source: str) -> None:
        self.source = source
        result = op.results[0].type
        self._out = (result.shape, result.dtype.np)
        self._kernel = compile_kernel(source, array_types([result], [op.operands[0].type]))

    writes_into = True

    def __call__(self, x, out=None):
        out = out[0] if out else np.empty(*self._out)
        self._kernel(array_arg(out), array_arg(x))
        return (out,)


def compile_arg_reduction(op: Op) -> ReductionKernel:
    """A kernel for argmax/argmin along ``axis``."""
    x = op.operands[0].type
    axis = op.attrs["axis"] % len(x.shape) if x.shape else None
    return ReductionKernel(op, arg_source(op.name, x.dtype, len(x.shape), axis, op.results[0].type.dtype))


def _split_loops(rank, axes, keepdims):
    """Loop vars of kept and reduced dims, and the output subscript."""
    kept = [d for d in range(rank) if d not in axes]
    out = [("0" if d in axes else f"i{d}") for d in range(rank) if keepdims or d not in axes]
    return kept, subscript(out)


def arg_source(name: str, dtype: dt.DType, rank: int, axis, out_dtype: dt.DType) -> str:
    """Source of argmax/argmin along `axis` (None for a rank-0 operand: the answer is 0)."""
    src = Source(kernel_header(1, 1))
    if axis is None:
        src("out0[()] = 0")
        return src.text()
    kept, out_index = _split_loops(rank, [axis], False)
    for d in range(rank):
        src(f"n{d} = in0.shape[{d}]")
    better = ">" if name == "argmax" else "<"
    at = [f"i{d}" if d != axis else "{k}" for d in range(rank)]
    with src.loops([f"i{d}" for d in kept], [f"n{d}" for d in kept]):
        src(f"best = {scalar.load('in0' + subscript(at).format(k='0'), dtype)}")
        src("found = 0")
        with src.block(f"for k in range(1, n{axis}):"):
            src("if best != best:")
            src("    break  # the first NaN is the answer")
            src(f"x = {scalar.load('in0' + subscript(at).format(k='k'), dtype)}")
            with src.block(f"if x {better} best or x != x:"):
                src("best = x")
                src("found = k")
        src(f"out0{out_index} = np.{out_dtype.np.name}(found)")
    return src.text()
