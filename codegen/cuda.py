"""The CUDA backend: `compile_op` turns one IR op placed on a GPU into a kernel over device arrays.

``kernel = compile_op(op)``; ``kernel(*device_arrays)`` returns a tuple of new device arrays,
exactly as the CPU backend (`fuseflow.codegen.cpu`) does with numpy arrays. A ``fused`` op is
one ``numba.cuda.jit`` kernel (`fuseflow.codegen.cuda_fused`); an elementwise op or reduction
alone is a one-op region; ``matmul`` is cuBLAS through CuPy or a tiled kernel
(`fuseflow.codegen.cuda_matmul`); ``reshape`` is a view; ``copy_to_device`` moves a value
between host and device (`copy_kernel`).

`has_gpu_kernel` is the one answer to "can this op run on a GPU", which placement reads. It
imports nothing of CUDA: only building a kernel does.
"""

from __future__ import annotations

from collections.abc import Callable

from fuseflow.codegen import cuda_device as cd
from fuseflow.codegen.fused import REDUCTIONS
from fuseflow.ir import dtypes as dt
from fuseflow.ir.core import Op, walk_ops
from fuseflow.ir.devices import DeviceSpec
from fuseflow.ir.opdefs import OPS

__all__ = ["GPU_OPS", "compile_op", "copy_kernel", "has_gpu_kernel"]

GPU_OPS = frozenset({"fused", "matmul", "reshape", "copy_to_device", "constant", *REDUCTIONS,
                     *(name for name, d in OPS.items() if d.category == "elementwise")})


def has_gpu_kernel(op: Op) -> bool:
    """True when `op` (with its region, if any) can run on a GPU: its kind has a CUDA kernel,
    matmuls are rank 2, and no value is a string or float16 (whose half helpers are CPU-only)."""
    if op.name not in GPU_OPS:
        return False
    if op.name == "matmul" and any(len(v.type.shape or ()) != 2 for v in op.operands):
        return False
    ops = [op, *(inner for region in op.regions for inner in walk_ops(region))]
    for o in ops:
        for v in (*o.operands, *o.results):
            if v.type.dtype.is_string or v.type.dtype is dt.float16:
                return False
    return all(o.name in GPU_OPS or o.name == "yield" for o in ops)


def _reshape(op: Op) -> Callable:
    shape = tuple(op.results[0].type.shape)

    def kernel(x):
        return (cd.reshape(x, shape),)

    return kernel


def _builders() -> dict:
    from fuseflow.codegen.cuda_fused import compile_fused_cuda, compile_single_cuda
    from fuseflow.codegen.cuda_matmul import CudaMatmul

    return {
        "fused": lambda op: compile_fused_cuda(op.regions[0]),
        "matmul": CudaMatmul,
        "reshape": _reshape,
        **{name: compile_single_cuda for name in REDUCTIONS},
        **{name: compile_single_cuda for name, d in OPS.items() if d.category == "elementwise"},
    }


def compile_op(op: Op) -> Callable:
    """A kernel for `op` on the GPU: ``kernel(*device_arrays) -> tuple of device arrays``."""
    if not has_gpu_kernel(op) or op.name in ("constant", "copy_to_device"):
        raise NotImplementedError(f"the CUDA backend has no kernel for op '{op.name}' "
                                  f"({', '.join(str(v.type) for v in op.operands)})")
    for v in op.operands + op.results:
        if not v.type.is_static:
            raise ValueError(f"cannot compile '{op.name}' with a non-static type {v.type}")
    return _builders()[op.name](op)


def copy_kernel(target: str) -> Callable:
    """The kernel of a ``copy_to_device`` to `target`: to a GPU, a host array is uploaded and a device
    array copied on the device; to the host, a device array is downloaded and a host array copied."""
    on_gpu = DeviceSpec.parse(target).device_type == "GPU"

    def to_gpu(x):
        return (cd.device_copy(x) if cd.is_device_array(x) else cd.to_device(x),)

    def to_cpu(x):
        return (cd.to_host(x) if cd.is_device_array(x) else x.copy(),)

    return to_gpu if on_gpu else to_cpu
