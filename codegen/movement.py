"""Data movement and generators: transpose, slice, concat, gather, iota, reshape, random numbers.

Copies move raw element bits (float16 as uint16), so they are exact for every
dtype. Sizes are read from the arrays at run time; only ranks, axes, permutations
and static slice starts/steps shape a kernel's source. ``reshape`` of a
C-contiguous input is a view (no kernel). Random kernels reproduce the reference
counter-based splitmix64 streams of `fuseflow.ir.opdefs_data`.
"""

from __future__ import annotations

import numpy as np
from numba import types as nbt

from fuseflow.codegen import scalar
from fuseflow.codegen.source import Source, array_arg, array_types, compile_kernel, kernel_header, subscript
from fuseflow.ir import dtypes as dt
from fuseflow.ir.core import Op

_M64 = 0xFFFFFFFFFFFFFFFF


class MovementKernel:
    """A compiled kernel writing the op's results from its inputs (plus fixed extra arguments)."""

    def __init__(self, op: Op, source: str, extra=(), extra_types=(), flat_outputs=False) -> None:
        self.source = source
        self.op_name = op.name
        self._outs = [(r.type.shape, r.type.dtype.np) for r in op.results]
        self._extra = tuple(extra)
        self._flat = flat_outputs
        out_types = [r.type for r in op.results]
        if flat_outputs:
            out_types = [t.__class__(t.dtype, (t.size,)) for t in out_types]
        types = array_types(out_types, [v.type for v in op.operands]) + tuple(extra_types)
        self._kernel = compile_kernel(source, types)

    writes_into = True

    def __call__(self, *inputs, out=None):
        outs = out or tuple(np.empty(shape, dtype) for shape, dtype in self._outs)
        args = [array_arg(o.reshape(-1) if self._flat else o) for o in outs]
        self._kernel(*args, *map(array_arg, inputs), *self._extra)
        return outs


def _loop_vars(rank, prefix="i"):
    return [f"{prefix}{d}" for d in range(rank)]


def _shape_lines(src: Source, array: str, rank: int, prefix="n") -> list:
    for d in range(rank):
        src(f"{prefix}{d} = {array}.shape[{d}]")
    return [f"{prefix}{d}" for d in range(rank)]


# ----------------------------------------------------------------------------- transpose, slice


def compile_transpose(op: Op) -> MovementKernel:
    """Result dim i is operand dim ``perm[i]``."""
    perm = [int(p) for p in op.attrs["perm"]]
    src = Source(kernel_header(1, 1))
    iv = _loop_vars(len(perm))
    with src.loops(iv, _shape_lines(src, "out0", len(perm))):
        src_index = [iv[perm.index(j)] for j in range(len(perm))]
        src(f"out0{subscript(iv)} = in0{subscript(src_index)}")
    return MovementKernel(op, src.text())


def compile_slice(op: Op) -> MovementKernel:
    """Basic slicing with static, normalised start and step per dim (negative steps too)."""
    shape = op.operands[0].type.shape
    starts_steps = [slice(*t).indices(d)[::2] for d, t in zip(shape, op.attrs["slices"])]
    src = Source(kernel_header(1, 1))
    iv = _loop_vars(len(shape))
    with src.loops(iv, _shape_lines(src, "out0", len(shape))):
        index = [f"{start} + {step} * {i}" for (start, step), i in zip(starts_steps, iv)]
        src(f"out0{subscript(iv)} = in0{subscript(index)}")
    return MovementKernel(op, src.text())


# ----------------------------------------------------------------------------- concat, gather


def compile_concat(op: Op) -> MovementKernel:
    """One kernel copying each operand into its range along ``axis``."""
    rank = len(op.results[0].type.shape)
    axis = op.attrs["axis"] % rank
    src = Source(kernel_header(1, len(op.operands)))
    src("offset = 0")
    iv = _loop_vars(rank)
    for k in range(len(op.operands)):
        with src.loops(iv, _shape_lines(src, f"in{k}", rank)):
            out_index = [f"offset + {v}" if d == axis else v for d, v in enumerate(iv)]
            src(f"out0{subscript(out_index)} = in{k}{subscript(iv)}")
        src(f"offset += in{k}.shape[{axis}]")
    return MovementKernel(op, src.text())


def compile_gather(op: Op) -> MovementKernel:
    """``params`` slices picked by ``indices`` along ``axis``; a bad index raises IndexError.

    The kernel checks every index first and returns the first bad one (numba's string
    formatting would triple its compile time); its caller raises the error.
    """
    params, indices = (v.type for v in op.operands)
    axis = op.attrs["axis"] % len(params.shape)
    src = Source(kernel_header(1, 2))

    def copy(pv, qv, rv):
        src(f"out0{subscript(pv + qv + rv)} = in0{subscript(pv + ['j'] + rv)}")

    _indexed_nest(src, "in0", len(params.shape), axis, len(indices.shape), copy)
    return GatherKernel(op, src.text())


def _indexed_nest(src: Source, indexed: str, rank: int, axis: int, idx_rank: int, body) -> None:
    """Checks every index (in1) against dim `axis` of `indexed`, returning the first bad one, then walks
    (dims before axis, index positions, dims after axis) with ``j`` the index: ``body(pv, qv, rv)``."""
    src(f"n = {indexed}.shape[{axis}]")
    qv = _loop_vars(idx_rank, "q")
    with src.loops(qv, _shape_lines(src, "in1", idx_rank, "m")):
        src(f"j = np.int64(in1{subscript(qv)})")
        with src.block("if j < 0 or j >= n:"):
            src("return True, j, n")
    pv, rv = _loop_vars(axis, "p"), _loop_vars(rank - axis - 1, "r")
    sizes = _shape_lines(src, indexed, rank, "s")
    with src.loops(pv + qv, sizes[:axis] + [f"m{d}" for d in range(idx_rank)]):
        src(f"j = in1{subscript(qv)}")
        with src.loops(rv, sizes[axis + 1:]):
            body(pv, qv, rv)
    src("return False, np.int64(0), n")


class GatherKernel(MovementKernel):
    """gather and scatter_add: raise ``IndexError`` naming the first index outside [0, n) (negatives too)."""

    writes_into = False

    def __call__(self, params, indices):
        out = np.empty(*self._outs[0])
        bad, index, n = self._kernel(array_arg(out), array_arg(params), indices)
        if bad:
            raise IndexError(f"{self.op_name} index {index} is out of range [0, {n})")
        return (out,)


def compile_scatter_slice(op: Op) -> MovementKernel:
    """Zeros of the result shape, then the operand written at the (static) slice positions."""
    out = op.results[0].type
    starts_steps = [slice(*t).indices(d)[::2] for d, t in zip(out.shape, op.attrs["slices"])]
    src = Source(kernel_header(1, 1))
    src("out0[...] = 0")
    iv = _loop_vars(len(out.shape))
    with src.loops(iv, _shape_lines(src, "in0", len(out.shape))):
        index = [f"{start} + {step} * {i}" for (start, step), i in zip(starts_steps, iv)]
        src(f"out0{subscript(index)} = in0{subscript(iv)}")
    return MovementKernel(op, src.text())


def compile_scatter_add(op: Op) -> MovementKernel:
    """Zeros, plus each slice of the updates added at its index along ``axis`` (a bad index raises)."""
    updates, indices = (v.type for v in op.operands)
    out = op.results[0].type
    axis = op.attrs["axis"] % len(out.shape)
    src = Source(kernel_header(1, 2))
    src("out0[...] = 0")

    def accumulate(pv, qv, rv):
        target = f"out0{subscript(pv + ['j'] + rv)}"
        value = f"in0{subscript(pv + qv + rv)}"
        if updates.dtype is dt.float16:
            src(f"{target} = _h.f32_to_f16(_h.f16_to_f32({target}) + _h.f16_to_f32({value}))")
        else:
            src(f"{target} += {value}")

    _indexed_nest(src, "out0", len(out.shape), axis, len(indices.shape), accumulate)
    return GatherKernel(op, src.text())


# ----------------------------------------------------------------------------- generators


def compile_iota(op: Op) -> MovementKernel:
    """The index along ``axis`` at every position, converted to ``dtype``."""
    out = op.results[0].type
    src = Source(kernel_header(1, 0))
    iv = _loop_vars(len(out.shape))
    with src.loops(iv, _shape_lines(src, "out0", len(out.shape))):
        value = scalar.to_register(scalar.cast_expr(f"np.int64({iv[op.attrs['axis'] % len(iv)]})",
                                                    dt.int64, out.dtype), out.dtype)
        src(f"out0{subscript(iv)} = {scalar.store(value, out.dtype)}")
    return MovementKernel(op, src.text())


class ReshapeKernel:
    """``reshape`` of a C-contiguous array: a view with the result shape (no copy)."""

    source = None
    writes_into = False

    def __init__(self, op: Op) -> None:
        self._shape = op.results[0].type.shape

    def __call__(self, x):
        return (x.reshape(self._shape),)

    def native(self, args, results, env, tag):
        return [f"{results[0]} = {args[0]}.reshape({tuple(self._shape)!r})"] if self._shape else None


_DRAW = {"random_uniform": "_h.uniform_bits", "random_normal": "_h.normal_pair",
         "random_truncated_normal": "_h.truncated_normal"}


def compile_random(op: Op) -> MovementKernel:
    """The reference's draws: element i is a function of (seed, seed2, counter, i) only."""
    dtype = op.results[0].type.dtype
    src = Source(kernel_header(1, 1, ["seed", "seed2"]))
    src("key = _h.random_key(seed, seed2, in0[()])")
    with src.block("for i in range(out0.shape[0]):"):
        src(f"out0[i] = {scalar.store(f'{_DRAW[op.name]}(key, np.uint64(i))', dtype)}")
    seeds = (np.uint64(op.attrs["seed"] & _M64), np.uint64(op.attrs["seed2"] & _M64))
    return MovementKernel(op, src.text(), seeds, (nbt.uint64, nbt.uint64), flat_outputs=True)


BUILDERS = {
    "transpose": compile_transpose,
    "slice": compile_slice,
    "concat": compile_concat,
    "gather": compile_gather,
    "scatter_slice": compile_scatter_slice,
    "scatter_add": compile_scatter_add,
    "iota": compile_iota,
    "reshape": ReshapeKernel,
    **{name: compile_random for name in _DRAW},
}
