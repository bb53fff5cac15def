"""Kernels compiled by LLVM directly (`codegen.pyllvm` + `codegen.native`) against numba.

pyllvm promises numba's semantics, so the same generated source must give the same bits through
both compilers: every elementwise op and reduction of the case table, over every dtype, with
broadcasting, NaN, infinities and edge integers. The rest: what the call boundary checks, the
fall-backs (to numba for sources outside the subset, to the copying path for arrays a kernel was
not compiled for) and the scratch arrays of column reductions.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import types as nbt

from fuseflow.codegen import native, pyllvm, source
from fuseflow.codegen.cpu import compile_op
from fuseflow.codegen.source import NativeKernel, array_types, compile_kernel
from fuseflow.ir import dtypes as dt
from fuseflow.ir.opdefs import OPS
from fuseflow.ir.types import TensorType
from tests.test_codegen_cpu import CASES, one_op_function, random_array

ELEMENTWISE_AND_REDUCTIONS = sorted(name for name in CASES if OPS[name].category in ("elementwise", "reduction")
                                    and name not in ("argmax", "argmin"))


def _both(op, monkeypatch):
    """`op` compiled natively and by numba (FUSEFLOW_NATIVE=0)."""
    fast = compile_op(op)
    monkeypatch.setenv("FUSEFLOW_NATIVE", "0")
    slow = compile_op(op)
    monkeypatch.delenv("FUSEFLOW_NATIVE")
    return fast, slow


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.kind == "f" else a


@pytest.mark.parametrize("name", ELEMENTWISE_AND_REDUCTIONS)
def test_same_bits_as_numba(name, monkeypatch):
    rng = np.random.default_rng(7)
    for types, attrs in CASES[name]():
        if any(t.dtype is dt.float16 for t in types):
            continue  # float16 kernels stay with numba (see test_float16_falls_back_to_numba)
        _, op = one_op_function(name, types, attrs)
        fast, slow = _both(op, monkeypatch)
        for _ in range(3):
            inputs = [random_array(rng, t, name, i) for i, t in enumerate(types)]
            for got, want in zip(fast(*inputs), slow(*inputs)):
                what = f"{name} {[str(t) for t in types]} {attrs}"
                assert got.dtype == want.dtype and got.shape == want.shape, what
                np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=what)


def test_fused_kernels_are_native_and_float16_falls_back_to_numba():
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    f32 = compile_kernel(SOFTMAX_LIKE, _types(dt.float32), native=True)
    f16 = compile_kernel(SOFTMAX_LIKE.replace("a1 = in0[i0, i1]", "a1 = _h.f16_to_f32(in0[i0, i1])"),
                         _types(dt.float16), native=True)
    assert isinstance(f32, NativeKernel) and not isinstance(f16, NativeKernel)
    out = np.empty_like(rows)
    f32(out, rows, np.array(rows.shape), 0, 3)
    np.testing.assert_array_equal(out, rows - rows.max(axis=1, keepdims=True))


# A row kernel like the ones fused.py writes: the row max, then each element minus it.
SOFTMAX_LIKE = """def kernel(out0, in0, dims, lo, hi):
    n1 = dims[1]
    for i0 in range(lo, hi):
        acc = np.float32(-np.inf)
        for i1 in range(n1):
            a1 = in0[i0, i1]
            acc = _h.maximum(acc, a1)
        for i1 in range(n1):
            out0[i0, i1] = np.float32(in0[i0, i1] - acc)
"""


def _types(dtype):
    t = TensorType(dtype, (3, 4))
    return array_types([t], [t, TensorType(dt.int64, (2,))]) + (nbt.uintp, nbt.uintp)


def test_arrays_it_was_not_compiled_for_take_the_copying_path():
    kernel = compile_kernel(SOFTMAX_LIKE, _types(dt.float32), native=True)
    assert isinstance(kernel, NativeKernel)
    base = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    want = base[:, ::2] - base[:, ::2].max(axis=1, keepdims=True)
    for rows in (base[:, ::2], np.asfortranarray(base[:, :4]), base[:, ::2].astype(">f4")):
        out = np.empty((3, 4), np.float32)
        with pytest.raises(TypeError, match="do not match"):
            kernel.fast(out, rows, np.array([3, 4]), 0, 3)
        if rows.dtype.byteorder == ">":
            continue  # the numba version refuses a byte-swapped array too (the runtime never makes one)
        kernel(out, rows, np.array([3, 4]), 0, 3)
        np.testing.assert_array_equal(out, want if rows.base is base else rows - rows.max(axis=1, keepdims=True))
    readonly_out = np.empty((3, 4), np.float32)
    readonly_out.flags.writeable = False
    with pytest.raises(TypeError, match="do not match"):
        kernel.fast(readonly_out, base[:, :4].copy(), np.array([3, 4]), 0, 3)


def test_wrong_argument_count_or_kind_raises_type_error():
    kernel = compile_kernel(SOFTMAX_LIKE, _types(dt.float32), native=True)
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="takes 5 arguments"):
        kernel.fast(x, x)
    with pytest.raises(TypeError):
        kernel.fast(x, x, np.array([3, 4]), "0", 3)
    with pytest.raises(TypeError, match="do not match"):
        kernel.fast(x, x, np.array([3.0, 4.0]), 0, 3)  # dims of the wrong dtype


# A column reduction as fused.py writes it: a scratch accumulator per output column.
COLUMN_SUM = """def kernel(out0, in0, dims, lo, hi):
    n0 = dims[0]
    n1 = dims[1]
    acc0 = np.full((n1, ), np.float64(0.0))
    for i0 in range(n0):
        for i1 in range(n1):
            acc0[i1] = acc0[i1] + np.float64(in0[i0, i1])
    for i1 in range(n1):
        out0[i1] = np.float32(acc0[i1])
"""


def _column_types():
    return array_types([TensorType(dt.float32, (4,))], [TensorType(dt.float32, (3, 4)),
                                                        TensorType(dt.int64, (2,))]) + (nbt.uintp, nbt.uintp)


def test_scratch_arrays_of_column_reductions():
    kernel = compile_kernel(COLUMN_SUM, _column_types(), native=True)
    assert isinstance(kernel, NativeKernel)
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    out = np.empty(4, np.float32)
    kernel(out, x, np.array([3, 4]), 0, 3)
    np.testing.assert_array_equal(out, x.astype(np.float64).sum(axis=0).astype(np.float32))
    with pytest.raises(MemoryError, match="scratch"):  # a scratch array of 2**62 floats cannot be had
        kernel.fast(out, x, np.array([0, 2**59]), 0, 0)


def test_a_kernel_runs_without_the_gil():
    import threading
    import time

    # While another thread is inside a long kernel, this thread's Python code keeps running: were
    # the GIL held, one gap between two of its steps would last the whole kernel.
    kernel = compile_kernel(COLUMN_SUM, _column_types(), native=True)
    x = np.ones((1 << 22, 4), np.float32)
    out = np.empty(4, np.float32)
    start = time.perf_counter()
    kernel.fast(out, x, np.array(x.shape), 0, 0)
    alone = time.perf_counter() - start
    worker = threading.Thread(target=kernel.fast, args=(out, x, np.array(x.shape), 0, 0))
    gap, last = 0.0, time.perf_counter()
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    worker.join()
    assert (out == x.shape[0]).all()
    assert gap < 0.5 * alone, (gap, alone)


def test_the_array_layout_was_recognised():
    assert native.ABI is not None
    assert source.native_enabled()


@pytest.mark.parametrize("dtype", [dt.float32, dt.float64])
def test_streaming_stores_give_the_same_bits_at_every_alignment(dtype, monkeypatch):
    # A flat result this large is written with non-temporal stores from its first 64-byte aligned
    # element on: each start of the output view below moves that point, and the threads' split
    # of [0, n) moves it again per chunk.
    n = pyllvm.STREAM_MIN_BYTES // dtype.np.itemsize + 5
    t = TensorType(dtype, (n,))
    _, op = one_op_function("mul", [t, t], {})
    fast, slow = _both(op, monkeypatch)
    assert "_h.stream_from(out0, lo, hi), hi" in fast.source
    rng = np.random.default_rng(3)
    x, y = (rng.standard_normal(n).astype(dtype.np) for _ in range(2))
    (want,) = slow(x, y)
    room = np.empty(n + 16, dtype.np)
    for start in (0, 1, 3, 8, 15):
        out = room[start:start + n]
        out[:] = np.nan
        fast(x, y, out=(out,))
        np.testing.assert_array_equal(_bits(out), _bits(want), err_msg=f"output starting at element {start}")


def test_only_flat_float_results_stream():
    from fuseflow.codegen.source import _namespace as namespace

    def source(shape, dtype, name="mul"):
        t = TensorType(dtype, shape)
        return compile_op(one_op_function(name, [t, t], {})[1]).source

    assert "stream_from" in source((7,), dt.float32)  # decided at run time: small results do not stream
    assert "stream_from" not in source((3, 4), dt.float32)
    assert "stream_from" not in source((7,), dt.int32)
    f64 = pyllvm.ArrayType(pyllvm.F64, 1)
    types = [pyllvm.ArrayType(pyllvm.F64, 1, False), f64, f64, pyllvm.ArrayType(pyllvm.I64, 1), pyllvm.U64, pyllvm.U64]
    text = str(pyllvm.translate_kernel(source((7,), dt.float64), types, "k", namespace()))
    assert pyllvm.STREAM_HINT in text and "llvm.x86.sse.sfence" in text


# What LLVM's loop vectoriser leaves: a streaming loop's vector body (its loop ID keeps our hint),
# another loop's vector body, and a scalar store.
VECTORISED = """define void @f(ptr %p, ptr %q) {
entry:
  br label %vector.body
vector.body:
  %i = phi i64 [0, %entry], [%n, %vector.body]
  %a = getelementptr float, ptr %p, i64 %i
  store <8 x float> zeroinitializer, ptr %a, align 4
  %n = add i64 %i, 8
  %c = icmp ult i64 %n, 64
  br i1 %c, label %vector.body, label %vector.body2, !llvm.loop !0
vector.body2:
  %j = phi i64 [0, %vector.body], [%m, %vector.body2]
  %b = getelementptr double, ptr %q, i64 %j
  store <4 x double> zeroinitializer, ptr %b, align 8
  %m = add i64 %j, 4
  %d = icmp ult i64 %m, 64
  br i1 %d, label %vector.body2, label %exit, !llvm.loop !3
exit:
  store float 0.0, ptr %q, align 4
  ret void
}
!0 = distinct !{!0, !1, !2}
!1 = !{!"llvm.loop.isvectorized", i32 1}
!2 = !{!"fuseflow.stream"}
!3 = distinct !{!3, !1}
"""


def test_nontemporal_rewrites_the_vector_body_of_streaming_loops_only():
    import llvmlite.binding as llvm

    text = native.nontemporal(VECTORISED)
    assert "store <8 x float> zeroinitializer, ptr %a, align 32, !nontemporal !4" in text
    assert "store <4 x double> zeroinitializer, ptr %b, align 8\n" in text
    assert "store float 0.0, ptr %q, align 4\n" in text
    assert text.count("!nontemporal") == 1 and "!4 = !{i32 1}" in text
    llvm.parse_assembly(text).verify()
