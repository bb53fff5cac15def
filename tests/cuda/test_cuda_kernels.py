"""CUDA kernels against the reference interpreter: elementwise chains with broadcasting, reductions
over rows, columns and everything (odd sizes: more reduced elements than threads, more rows than
blocks), row softmax as one kernel, multi-output regions and matmul.

Runs on the GPU numba.cuda sees: the simulator on CI, a real one from ``bench/gpu_check.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from irtest import fused_ops

from fuseflow.codegen import cuda_device
from fuseflow.codegen.cuda_fused import CUDA_STATS, block_size
from fuseflow.ir import dtypes as dt
from fuseflow.ir import interp
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Module
from fuseflow.ir.types import TensorType
from fuseflow.runtime import devices
from fuseflow.runtime.compile import compile_for_device, optimize_for_device
from fuseflow.runtime.executable import Executable

ROWS, COLS = 7, 37  # COLS > threads per block under the simulator (16): threads stride


def f32(*shape):
    return TensorType(dt.float32, shape)


def module_of(arg_types, body) -> Module:
    b = Builder(arg_types)
    out = body(b, *b.args)
    return Module([b.finish(list(out) if isinstance(out, (list, tuple)) else [out])])


def run_on_gpu(module: Module, inputs, rtol=1e-5, atol=1e-6):
    """Compiles `module` for the GPU, checks every result against the interpreter, returns the placed IR."""
    placed = optimize_for_device(module, "/gpu:0", soft=False)
    got = Executable(placed.main).run(list(inputs))
    want = interp.run(module, *inputs)
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return placed


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(dtype)


def test_the_gpu_is_present():
    assert devices.gpu_count() >= 1
    assert block_size() & (block_size() - 1) == 0


def test_elementwise_chain_with_broadcasting_is_one_kernel():
    # a*b + c*d - exp(e) with a row vector, a column and a scalar broadcast by index arithmetic
    def body(b, a, v, c, s, e):
        return b.op("sub", b.op("add", b.op("mul", a, v), b.op("mul", c, s)), b.op("exp", e))

    types = [f32(ROWS, COLS), f32(COLS), f32(ROWS, 1), f32(), f32(ROWS, COLS)]
    inputs = [rand(ROWS, COLS), rand(COLS), rand(ROWS, 1), np.array(0.5, np.float32), rand(ROWS, COLS, seed=1)]
    placed = run_on_gpu(module_of(types, body), inputs)
    (fused,) = fused_ops(placed)
    assert fused.device == "/device:GPU:0"


def test_gelu_and_integer_ops():
    def body(b, x, i, j):
        half, one, k = (b.constant(np.float32(v)) for v in (0.5, 1.0, 0.7978846))
        inner = b.op("mul", k, b.op("add", x, b.op("mul", b.constant(np.float32(0.044715)),
                                                   b.op("mul", x, b.op("mul", x, x)))))
        gelu = b.op("mul", b.op("mul", half, x), b.op("add", one, b.op("tanh", inner)))
        ints = b.op("floor_mod", b.op("add", i, j), b.constant(np.int32(5)))
        return gelu, ints, b.op("select", b.op("greater", x, b.constant(np.float32(0))), x, b.op("neg", x))

    types = [f32(ROWS, COLS), TensorType(dt.int32, (ROWS, COLS)), TensorType(dt.int32, (COLS,))]
    ints = np.random.default_rng(3).integers(-50, 50, (ROWS, COLS)).astype(np.int32)
    run_on_gpu(module_of(types, body), [rand(ROWS, COLS), ints, ints[0] * 3])


@pytest.mark.parametrize("name", ["reduce_sum", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod"])
@pytest.mark.parametrize("axes,keepdims", [((1,), True), ((1,), False), ((0,), False), ((0, 1), False)])
def test_reductions(name, axes, keepdims):
    shape = (COLS, ROWS) if axes == (0,) else (ROWS, COLS)  # always more reduced elements than threads
    x = rand(*shape) * (0.3 if name == "reduce_prod" else 1.0) + (1.0 if name == "reduce_prod" else 0.0)
    module = module_of([f32(*shape)], lambda b, x: b.op(name, b.op("mul", x, x), axes=axes, keepdims=keepdims))
    run_on_gpu(module, [x], rtol=1e-5)


@pytest.mark.parametrize("shape,axes", [((9, 40), (0,)), ((3, 4, 40), (0, 1))])
def test_column_reductions_run_one_thread_per_column(shape, axes):
    # more columns than reduced elements and the innermost dim kept: each thread reduces its own column
    def body(b, x):
        m = b.op("reduce_max", x, axes=axes, keepdims=True)
        e = b.op("exp", b.op("sub", x, m))
        return b.op("div", e, b.op("reduce_sum", e, axes=axes, keepdims=True)), b.op("reduce_mean", x, axes=axes,
                                                                                   keepdims=False)

    x = rand(*shape)
    x[1, 2] = np.nan  # a NaN column stays NaN
    module = module_of([f32(*shape)], body)
    executable = compile_for_device(module, "/gpu:0", soft=False)
    (kernel,) = [step[0] for step in executable.steps if step[4].name == "fused"]
    assert "cuda.shared" not in kernel.source and "cuda.grid(1)" in kernel.source
    got, want = executable.run([x]), interp.run(module, x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)


def test_integer_reductions_and_nan_propagation():
    def body(b, i, x):
        return (b.op("reduce_sum", i, axes=(1,), keepdims=False), b.op("reduce_max", i, axes=(0,), keepdims=False),
                b.op("reduce_max", x, axes=(1,), keepdims=False), b.op("reduce_min", x, axes=(1,), keepdims=False))

    ints = np.random.default_rng(5).integers(-1000, 1000, (ROWS, COLS)).astype(np.int64)
    x = rand(ROWS, COLS)
    x[2, 33] = np.nan  # found by a thread in its third stride
    run_on_gpu(module_of([TensorType(dt.int64, (ROWS, COLS)), f32(ROWS, COLS)], body), [ints, x])


def test_row_softmax_is_one_kernel_launch():
    def body(b, x):
        m = b.op("reduce_max", x, axes=(1,), keepdims=True)
        e = b.op("exp", b.op("sub", x, m))
        return b.op("div", e, b.op("reduce_sum", e, axes=(1,), keepdims=True))

    module = module_of([f32(ROWS, COLS)], body)
    executable = compile_for_device(module, "/gpu:0", soft=False)
    (fused,) = [op for op in executable.steps if op[4].name == "fused"]
    assert "cuda.shared.array" in fused[0].source and "cuda.syncthreads()" in fused[0].source
    x = rand(ROWS, COLS) * 10
    before = CUDA_STATS["launches"]
    (got,) = executable.run([x])
    assert CUDA_STATS["launches"] - before == 1
    np.testing.assert_allclose(got, interp.run(module, x)[0], rtol=1e-5, atol=1e-7)


def test_multi_output_region():
    # siblings reading x share one kernel: exp(x) * v, the row sums of x*x and its row-normalised form
    def body(b, x, v):
        sq = b.op("mul", x, x)
        s = b.op("reduce_sum", sq, axes=(1,), keepdims=True)
        return b.op("mul", b.op("exp", x), v), b.op("div", sq, s), b.op("reshape", s, shape=(ROWS,))

    placed = run_on_gpu(module_of([f32(ROWS, COLS), f32(COLS)], body), [rand(ROWS, COLS), rand(COLS)])
    assert any(len(op.results) >= 2 for op in fused_ops(placed))


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul(ta, tb):
    m, k, n = 9, 13, 11
    a = rand(k, m) if ta else rand(m, k)
    w = rand(n, k, seed=2) if tb else rand(k, n, seed=2)
    module = module_of([f32(*a.shape), f32(*w.shape)],
                       lambda b, x, y: b.op("matmul", x, y, transpose_a=ta, transpose_b=tb))
    placed = run_on_gpu(module, [a, w], rtol=1e-4, atol=1e-5)
    assert [op.device for op in placed.main.ops if op.name == "matmul"] == ["/device:GPU:0"]


def test_matmul_epilogue_and_empty_shapes():
    def body(b, x, w, c):
        return b.op("maximum", b.op("add", b.op("matmul", x, w, transpose_a=False, transpose_b=False), c),
                    b.constant(np.float32(0)))

    run_on_gpu(module_of([f32(5, 3), f32(3, 4), f32(4)], body), [rand(5, 3), rand(3, 4), rand(4)])
    empty = module_of([f32(0, 3)], lambda b, x: b.op("reduce_sum", b.op("exp", x), axes=(1,), keepdims=False))
    run_on_gpu(empty, [np.zeros((0, 3), np.float32)])


def test_every_mathlib_function_has_a_device_version():
    from fuseflow.codegen import mathlib

    missing = [f"{n}_{s}" for n, s in mathlib.FUNCTIONS if not hasattr(cuda_device.device_math(), f"{n}_{s}")]
    assert not missing, f"the CUDA _m lacks {missing}: add them to cuda_device._MATH"


def test_transfers_are_counted():
    before = dict(cuda_device.TRANSFERS)
    x = cuda_device.to_device(rand(3, 4))
    assert cuda_device.is_device_array(x)
    np.testing.assert_array_equal(cuda_device.to_host(cuda_device.device_copy(x)), rand(3, 4))
    assert cuda_device.TRANSFERS == {"to_device": before["to_device"] + 1, "to_host": before["to_host"] + 1}


def test_compile_for_device_is_the_jit_hook():
    # what @fuseflow.jit(device="gpu") calls: numpy in, numpy out, the copies explicit in the IR
    module = module_of([f32(3, 5)], lambda b, x: b.op("tanh", b.op("mul", x, x)))
    placed = optimize_for_device(module, "gpu")
    names = [(op.name, op.device) for op in placed.main.ops[:-1]]
    assert names == [("copy_to_device", "/device:GPU:0"), ("fused", "/device:GPU:0"),
                     ("copy_to_device", "/device:CPU:0")]
    (got,) = compile_for_device(module, "gpu").run([rand(3, 5)])
    np.testing.assert_allclose(got, np.tanh(rand(3, 5) ** 2), rtol=1e-6)
