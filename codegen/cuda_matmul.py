"""Matrix products on the GPU: cuBLAS through CuPy when CuPy is installed, else a tiled numba kernel.

Both take and return numba device arrays (CuPy reads them through the CUDA array interface, and
its result is handed back the same way, without a copy). The numba kernel computes one
``TILE x TILE`` block of the product per thread block, staging tiles of both operands in shared
memory; transposes are index arithmetic. Only rank-2 operands have a GPU kernel here (batched
products stay on the CPU).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from fuseflow.codegen import cuda_device as cd
from fuseflow.codegen.cuda_fused import CUDA_STATS, compile_cuda
from fuseflow.ir.core import Op


@cache
def cupy_module():
    """CuPy, when it is installed and a real GPU runs the kernels (never under the simulator); else None."""
    if cd.simulated():
        return None
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def tile() -> int:
    return 4 if cd.simulated() else 16


def matmul_source(dtype: np.dtype, transpose_a: bool, transpose_b: bool) -> str:
    """The tiled kernel ``kernel(c, a, b)`` for one dtype and pair of transpose flags."""
    t = tile()
    acc = "float64" if dtype.kind == "f" and dtype.itemsize > 4 else ("float32" if dtype.kind == "f" else "int64")
    a_at = "a[kk, row]" if transpose_a else "a[row, kk]"
    b_at = "b[col2, kk2]" if transpose_b else "b[kk2, col2]"
    k_dim = "a.shape[0]" if transpose_a else "a.shape[1]"
    return f"""def kernel(c, a, b):
    sa = cuda.shared.array(({t}, {t}), np.{acc})
    sb = cuda.shared.array(({t}, {t}), np.{acc})
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * {t} + ty
    col = cuda.blockIdx.x * {t} + tx
    col2 = col
    m = c.shape[0]
    n = c.shape[1]
    k = {k_dim}
    acc = np.{acc}(0)
    for step in range((k + {t - 1}) // {t}):
        kk = step * {t} + tx
        if row < m and kk < k:
            sa[ty, tx] = {a_at}
        else:
            sa[ty, tx] = 0
        kk2 = step * {t} + ty
        if kk2 < k and col2 < n:
            sb[ty, tx] = {b_at}
        else:
            sb[ty, tx] = 0
        cuda.syncthreads()
        for j in range({t}):
            acc += sa[ty, j] * sb[j, tx]
        cuda.syncthreads()
    if row < m and col < n:
        c[row, col] = acc
"""


class CudaMatmul:
    """``kernel(a, b) -> (c,)`` on device arrays, for one rank-2 matmul op."""

    writes_into = False

    def __init__(self, op: Op) -> None:
        self.transpose_a = op.attrs["transpose_a"]
        self.transpose_b = op.attrs["transpose_b"]
        result = op.results[0].type
        self.shape, self.dtype = result.shape, result.dtype.np
        self._cupy = cupy_module()
        if self._cupy is None:
            t = tile()
            grid = (max(math.ceil(self.shape[1] / t), 1), max(math.ceil(self.shape[0] / t), 1))
            source = matmul_source(self.dtype, self.transpose_a, self.transpose_b)
            self._kernel, self._config = compile_cuda(source), (grid, (t, t))  # configured per launch

    def __call__(self, a, b):
        CUDA_STATS["launches"] += 1
        if self._cupy is not None:
            cp = self._cupy
            x, y = cp.asarray(a), cp.asarray(b)
            out = cp.matmul(x.T if self.transpose_a else x, y.T if self.transpose_b else y)
            return (cd.cuda().as_cuda_array(cp.ascontiguousarray(out)),)
        c = cd.device_empty(self.shape, self.dtype)
        if c.size:
            self._kernel[self._config](c, a, b)
        return (c,)
