"""Reductions as generated loop nests: reduce_sum/prod/mean/max/min and argmax/argmin.

The outer loops walk the kept dims, the inner loops the reduced ones, with one
accumulator per output element. Float sums, products and means accumulate in
float64 (as the reference does), integer ones in int64 (wrapping into the result
dtype, which equals numpy's wrapping); integer means truncate toward zero.
Max/min propagate NaN; argmax/argmin give the first extreme index, a NaN counting
as the extreme. Empty reductions give the identity (0, 1, NaN for a float mean,
the lowest/highest value for max/min).
"""

from __future__ import annotations

import numpy as np

from fuseflow.codegen import scalar
from fuseflow.codegen.source import Source, array_arg, array_types, compile_kernel, kernel_header, subscript
from fuseflow.ir import dtypes as dt
from fuseflow.ir.core import Op

REDUCTIONS = ("reduce_sum", "reduce_prod", "reduce_mean", "reduce_max", "reduce_min")


class ReductionKernel:
    """A compiled one-input, one-output kernel; call with the input array, get a 1-tuple."""

    def __init__(self, op: Op, source: str) -> None:
        self.source = source
        result = op.results[0].type
        self._out = (result.shape, result.dtype.np)
        self._kernel = compile_kernel(source, array_types([result], [op.operands[0].type]))

    def __call__(self, x):
        out = np.empty(*self._out)
        self._kernel(array_arg(out), array_arg(x))
        return (out,)


def compile_reduction(op: Op) -> ReductionKernel:
    """A kernel for reduce_sum/prod/mean/max/min over ``axes`` with ``keepdims``."""
    x = op.operands[0].type
    axes = sorted({a % len(x.shape) for a in op.attrs["axes"]}) if x.shape else []
    return ReductionKernel(op, reduction_source(op.name, x.dtype, len(x.shape), axes, op.attrs["keepdims"]))


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


def _accumulator(name: str, dtype: dt.DType):
    """(initial value, update statement with {x}, final expression) of a reduction."""
    floating = dtype.is_floating
    if name in ("reduce_sum", "reduce_mean", "reduce_prod"):
        one = name == "reduce_prod"
        init = ("1.0" if one else "0.0") if floating else f"np.int64({int(one)})"
        x = "np.float64({x})" if floating else "np.int64({x})"
        update = f"acc {'*' if one else '+'}= {x}"
        if name != "reduce_mean":
            return init, update, "acc"
        return init, update, ("acc / np.float64(count)" if floating else "_h.trunc_div_int(acc, count)")
    lowest = name == "reduce_max"
    if floating:
        init = scalar.typed_const(float("-inf") if lowest else float("inf"), dtype)
    else:
        init = f"np.int64({int(dtype.min if lowest else dtype.max)})"
    x = "{x}" if floating else "np.int64({x})"
    return init, f"acc = _h.{'maximum' if lowest else 'minimum'}(acc, {x})", "acc"


def reduction_source(name: str, dtype: dt.DType, rank: int, axes, keepdims: bool) -> str:
    """Source of a reduction of a rank-`rank` array over sorted `axes`."""
    kept, out_index = _split_loops(rank, axes, keepdims)
    src = Source(kernel_header(1, 1))
    for d in range(rank):
        src(f"n{d} = in0.shape[{d}]")
    src("count = " + " * ".join(["1"] + [f"n{d}" for d in axes]))
    init, update, final = _accumulator(name, dtype)
    with src.loops([f"i{d}" for d in kept], [f"n{d}" for d in kept]):
        src(f"acc = {init}")
        with src.loops([f"i{d}" for d in axes], [f"n{d}" for d in axes]):
            x = scalar.load("in0" + subscript([f"i{d}" for d in range(rank)]), dtype)
            src(update.format(x=x))
        # float16 results come straight from the float64 accumulator: one rounding.
        value = f"_h.f32_to_f16({final})" if dtype is dt.float16 else f"np.{dtype.np.name}({final})"
        src(f"out0{out_index} = {value}")
    return src.text()


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
