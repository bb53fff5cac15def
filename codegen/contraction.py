"""matmul: float32/float64 through BLAS, integers and float16 through a generated loop kernel.

Batch dims broadcast (numpy rules); ``transpose_a``/``transpose_b`` swap the last two
dims of an operand. The BLAS path hands transposed views to ``np.matmul(.., out=)``
(a gemm per batch); the loop kernel accumulates integers in int64 (wrapping into
the result dtype, as numpy's integer matmul wraps) and float16 in float64, as the
reference does.
"""

from __future__ import annotations

import numpy as np

from fuseflow.codegen import scalar
from fuseflow.codegen.blas import gemm as blas_gemm
from fuseflow.codegen.blas import product_flops
from fuseflow.codegen.driver import matmul_loops
from fuseflow.codegen.source import (
    Source,
    array_arg,
    array_types,
    broadcast_index,
    compile_kernel,
    kernel_header,
    subscript,
)
from fuseflow.ir import dtypes as dt
from fuseflow.ir.core import Op


def compile_matmul(op: Op):
    """A kernel for ``matmul``: BLAS for float32/float64, a numba loop nest otherwise."""
    a, b = (v.type for v in op.operands)
    out = op.results[0].type
    ta, tb = bool(op.attrs["transpose_a"]), bool(op.attrs["transpose_b"])
    if out.dtype in (dt.float32, dt.float64):
        return BlasMatmul(out, ta, tb, product_flops(op))
    return LoopMatmul(op, matmul_source(a, b, out, ta, tb))


# A product this small (2*m*n*k flops) runs as a loop nest inside an executable's driver.
INLINE_MATMUL_FLOPS = 1 << 16


class BlasMatmul:
    """``np.matmul`` into a new output array, with transposes as views (a BLAS gemm)."""

    source = None
    writes_into = True

    def __init__(self, out, ta: bool, tb: bool, flops: int = 0) -> None:
        self._out = (out.shape, out.dtype.np)
        self._ta, self._tb = ta, tb
        self._flops = flops

    def native(self, args, results, env, tag):
        """A small 2-D product as loops in a driver (see `codegen.driver`); None for BLAS-sized ones."""
        shape = self._out[0]
        if len(shape) != 2 or not 0 < self._flops <= INLINE_MATMUL_FLOPS:
            return None
        k = self._flops // (2 * shape[0] * shape[1])
        return matmul_loops(*args, results[0], shape, k, self._out[1], self._ta, self._tb)

    def __call__(self, a, b, out=None):
        out = out[0] if out else np.empty(*self._out)
        a = np.swapaxes(a, -1, -2) if self._ta else a
        b = np.swapaxes(b, -1, -2) if self._tb else b
        with np.errstate(all="ignore"):  # inf * 0 gives NaN, as IEEE (and the reference) say
            np.matmul(a, b, out=out)
        return (out,)


class BlasMatmulAdd:
    """``alpha * a @ b + c``: c is copied into the result, then one gemm accumulates into it.
    Given c itself as `out` (the runtime does so when nothing else holds c's buffer, see
    `fuseflow.runtime.executable`), the gemm updates c in place and no copy is made."""

    source = None
    writes_into = True
    updates_in_place = True  # `out` may be the addend itself

    def __init__(self, op: Op) -> None:
        a, _, c = (v.type for v in op.operands)
        self._out = (c.shape, c.dtype.np)
        self._ta, self._tb = bool(op.attrs["transpose_a"]), bool(op.attrs["transpose_b"])
        self._alpha = float(op.attrs["alpha"])
        self._k = a.shape[0] if self._ta else a.shape[1]
        self._gemm = blas_gemm("s" if c.dtype is dt.float32 else "d")
        self._flags = (101, 112 if self._ta else 111, 112 if self._tb else 111)  # row major, (no) transpose

    def native(self, args, results, env, tag):
        """A small product as loops in a driver, then ``c + alpha * product`` (None for BLAS-sized ones)."""
        (m, n), dtype = self._out
        if not 0 < 2 * m * n * self._k <= INLINE_MATMUL_FLOPS:
            return None
        a, b, c = args
        out = results[0]
        scale = f"np.{np.dtype(dtype).name}({self._alpha!r})"
        return matmul_loops(a, b, out, (m, n), self._k, dtype, self._ta, self._tb) + [
            f"for i in range({m}):",
            f"    for j in range({n}):",
            f"        {out}[i, j] = {c}[i, j] + {scale} * {out}[i, j]"]

    def __call__(self, a, b, c, out=None):
        out = out[0] if out else np.empty(*self._out)
        if out is not c:
            np.copyto(out, c)
        (m, n), k = self._out[0], self._k
        if m == 0 or n == 0 or k == 0:  # the product is all zeros (BLAS wants leading dims >= 1)
            return (out,)
        if self._gemm is None or not (a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous):
            a = np.swapaxes(a, -1, -2) if self._ta else a
            b = np.swapaxes(b, -1, -2) if self._tb else b
            with np.errstate(all="ignore"):
                out += (self._alpha * np.matmul(a, b)).astype(out.dtype)
            return (out,)
        self._gemm(*self._flags, m, n, k, self._alpha, a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1],
                   1.0, out.ctypes.data, n)
        return (out,)


class LoopMatmul:
    """A generated numba matmul kernel (integer and float16 operands)."""

    writes_into = True

    def __init__(self, op: Op, source: str) -> None:
        self.source = source
        out = op.results[0].type
        self._out = (out.shape, out.dtype.np)
        self._kernel = compile_kernel(source, array_types([out], [v.type for v in op.operands]))

    def __call__(self, a, b, out=None):
        out = out[0] if out else np.empty(*self._out)
        self._kernel(array_arg(out), array_arg(a), array_arg(b))
        return (out,)


def _operand_ref(name, shape, batch, batch_vars, rows, cols, transpose) -> str:
    """The subscript of a matmul operand: broadcast batch dims, then (rows, cols) or swapped."""
    batch_part = broadcast_index(shape[:-2], batch, batch_vars)[1:-1] if len(shape) > 2 else ""
    last = [cols, rows] if transpose else [rows, cols]
    return name + subscript(([batch_part] if batch_part else []) + last)


def matmul_source(a, b, out, ta: bool, tb: bool) -> str:
    """Source of the loop-nest matmul for operand types `a`, `b` and result type `out`."""
    batch = out.shape[:-2]
    batch_vars = [f"b{d}" for d in range(len(batch))]
    rank = len(out.shape)
    src = Source(kernel_header(1, 2))
    for d in range(len(batch)):
        src(f"nb{d} = out0.shape[{d}]")
    src(f"m = out0.shape[{rank - 2}]")
    src(f"n = out0.shape[{rank - 1}]")
    src(f"kk = in0.shape[{len(a.shape) - (2 if ta else 1)}]")
    floating = out.dtype.is_floating
    with src.loops(batch_vars + ["i", "j"], [f"nb{d}" for d in range(len(batch))] + ["m", "n"]):
        src("acc = 0.0" if floating else "acc = np.int64(0)")
        with src.block("for k in range(kk):"):
            x = scalar.load(_operand_ref("in0", a.shape, batch, batch_vars, "i", "k", ta), a.dtype)
            y = scalar.load(_operand_ref("in1", b.shape, batch, batch_vars, "k", "j", tb), b.dtype)
            cast = "np.float64" if floating else "np.int64"
            src(f"acc += {cast}({x}) * {cast}({y})")
        src(f"out0{subscript(batch_vars + ['i', 'j'])} = {scalar.store('acc', out.dtype)}")
    return src.text()
