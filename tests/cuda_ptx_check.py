"""Compiles the generated CUDA kernels to PTX for sm_90 with NVVM, no GPU needed.

    python tests/cuda_ptx_check.py        (exit status 0: every kernel compiled)

The simulator runs kernels as Python, so it cannot tell whether numba's CUDA target accepts the
generated source (numpy ufuncs, for one, it does not). This check types and lowers every kernel
for a real GPU: each elementwise op of the op table alone for each dtype its type rule accepts,
every reduction over rows, columns and everything, row softmax, the regions of an MLP training
step, and the tiled matmul. It needs the CUDA toolkit's NVVM (not a driver); `tests/test_cuda.py`
runs it when NVVM is there. Never import it into the simulator's process.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numba
import numba.cuda.dispatcher as cuda_dispatcher
import numpy as np
from numba import cuda
from numba import types as nbt

from fuseflow.codegen import cuda_device as cd
from fuseflow.codegen.cuda import has_gpu_kernel
from fuseflow.codegen.cuda_fused import REDUCTIONS, CudaFusedPlan
from fuseflow.codegen.cuda_matmul import matmul_source
from fuseflow.codegen.fused import single_op_region
from fuseflow.ir import dtypes as dt
from fuseflow.ir.builder import Builder
from fuseflow.ir.opdefs import OPS
from fuseflow.ir.types import TensorType
from fuseflow.passes.manager import PassManager
from fuseflow.passes.place import Placement

CC = (9, 0)
# Device functions are compiled for the current device's compute capability; there is no device here.
cuda_dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=CC)

DTYPES = (dt.float32, dt.float64, dt.int32, dt.int64, dt.bool_)


def _array(t: TensorType):
    return nbt.Array(numba.from_dtype(t.dtype.np), max(len(t.shape), 1), "C")


def compile_source(source: str, argtypes: tuple) -> None:
    namespace = {"np": cd.device_numpy(), "_h": cd.device_helpers(), "_m": cd.device_math(), "cuda": cuda}
    exec(compile(source, "<fuseflow-cuda-kernel>", "exec"), namespace)  # noqa: S102
    cuda.compile_ptx(namespace["kernel"], argtypes, cc=CC)


def compile_region(block) -> None:
    plan = CudaFusedPlan(block)
    outs = [_array(v.type) for v in block.terminator.operands]
    ins = [_array(a.type) for a in block.args] + [_array(t) for t in plan.const_types]
    compile_source(plan.source, tuple(outs + ins + [nbt.int64[::1]]))


def elementwise_cases():
    for name, opdef in OPS.items():
        if opdef.category != "elementwise" or opdef.arity not in (1, 2, 3) or name in ("broadcast_to", "cast"):
            continue
        for d in DTYPES:
            types = [TensorType(d, (5, 7))] * opdef.arity
            if name == "select":
                types = [TensorType(dt.bool_, (5, 7)), TensorType(d, (5, 7)), TensorType(d, (7,))]
            try:
                opdef.type_rule(tuple(types), {}, name)
            except (TypeError, ValueError):
                continue
            yield f"{name}:{d.short}", _one_op(name, types, {})
    for src in (dt.float32, dt.int64, dt.bool_):
        for dst in (dt.float32, dt.float64, dt.int32, dt.int64, dt.bool_):
            yield f"cast:{src.short}->{dst.short}", _one_op("cast", [TensorType(src, (5, 7))], {"dtype": dst})


def _one_op(name, types, attrs):
    b = Builder(types)
    out = b.op(name, *b.args, **attrs)
    return single_op_region(out.owner)


def reduction_cases():
    # rows (a block each), a long column (a block), wide columns (a thread each), everything
    for name in REDUCTIONS:
        for d in (dt.float32, dt.float64, dt.int64):
            for shape, axes in (((5, 300), (1,)), ((300, 5), (0,)), ((5, 300), (0,)), ((4, 6), (0, 1))):
                for keep in (True, False) if d is dt.float32 else (False,):
                    yield (f"{name}:{d.short}{list(shape)}{list(axes)}{'k' if keep else ''}",
                           _one_op(name, [TensorType(d, shape)], {"axes": axes, "keepdims": keep}))


def _mlp_step():
    import fuseflow as tf

    x = tf.placeholder(tf.float32, [64, 784])
    y = tf.placeholder(tf.float32, [64, 10])
    w1, b1 = tf.Variable(tf.truncated_normal([784, 512])), tf.Variable(tf.zeros([512]))
    w2, b2 = tf.Variable(tf.truncated_normal([512, 10])), tf.Variable(tf.zeros([10]))
    logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
    train = tf.train.AdamOptimizer(1e-3).minimize(loss)
    return [train, loss, tf.nn.softmax(x), tf.reduce_max(tf.abs(x - 1.0), axis=0)]


def graph_cases():
    """The fused regions of an Adam training step of an MLP, softmax and a column max, placed on a GPU."""
    from fuseflow.cli import lower_graph

    lowered = lower_graph(_mlp_step)
    placement = Placement(gpus=1, has_gpu_kernel=has_gpu_kernel, arg_devices=lowered.arg_devices,
                          result_devices=lowered.result_devices)
    module = PassManager(placement=placement).run(lowered.module)
    for i, op in enumerate(module.main.ops):
        if op.name == "fused" and op.device:
            yield f"graph-region-{i}", op.regions[0]


def nvvm_available() -> bool:
    try:
        from numba.cuda.cudadrv.nvvm import NVVM

        NVVM()
        return True
    except Exception:  # noqa: BLE001  (no CUDA toolkit: nothing to compile with)
        return False


NO_NVVM = 3  # exit status when the CUDA toolkit's NVVM is missing


def kernel_sources():
    """(label, compile thunk) for every kernel checked."""
    from fuseflow.codegen import mathlib

    cases = [*elementwise_cases(), *reduction_cases(), *graph_cases()]
    for label, block in cases:
        yield label, lambda block=block: compile_region(block)
    for name, suffix in mathlib.FUNCTIONS:  # every _m function, whether an op uses it yet or not
        t = nbt.float32 if suffix == "f32" else nbt.float64
        source = f"def kernel(o, a):\n    o[0] = _m.{name}_{suffix}(a[0])\n"
        yield f"_m.{name}_{suffix}", lambda source=source, t=t: compile_source(source, (t[::1], t[::1]))
    for dtype in (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32)):
        t = numba.from_dtype(dtype)
        for ta in (False, True):
            for tb in (False, True):
                source = matmul_source(dtype, ta, tb)
                yield f"matmul:{dtype}:{ta},{tb}", lambda source=source, t=t: compile_source(
                    source, (t[:, ::1], t[:, ::1], t[:, ::1]))


def main() -> int:
    if not nvvm_available():
        print("no NVVM (the CUDA toolkit's compiler library): nothing checked")
        return NO_NVVM
    compiled, failures = 0, []
    for label, compile_it in kernel_sources():
        try:
            compile_it()
            compiled += 1
        except Exception as e:  # noqa: BLE001  (report every failure, then fail)
            failures.append((label, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
    print(f"{compiled} kernels compiled to PTX for sm_{CC[0]}{CC[1]}, {len(failures)} failed")
    for label, why in failures:
        print(f"FAILED {label}: {why}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
