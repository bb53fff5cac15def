"""One ``numba.cuda.jit`` kernel per ``fused`` region: the CPU loop nest, mapped onto a grid.

The analysis is `fuseflow.codegen.fused.FusedPlan`'s (domain ``S``, reduced axes ``A``, what
varies along ``A``, broadcasting by index arithmetic) and every scalar expression comes from
the same emitter table (`fuseflow.codegen.scalar`); only the loops differ:

- no reduction: a grid-stride loop over the elements of ``S``, each thread decomposing its
  linear index into the loop indices;
- reductions: one block per outer index (a grid-stride loop over the outer domain), the
  block's threads striding over the reduced elements, each reduction combined by a tree in
  shared memory and broadcast to the block; the yielded values that span ``A`` are then
  stored by the same threads. Row softmax (max, exp, sum, divide) is one kernel, one block
  per row. When the innermost dim is not reduced and outer indices outnumber the reduced
  elements (column sums over a batch), each thread reduces its own outer index instead:
  the grid-stride loop of the elementwise case, reads coalesced across threads.

Float sums accumulate in float64 and NaN is tracked beside max/min, as on the CPU.
"""

from __future__ import annotations

import hashlib
import linecache
import math
from contextlib import contextmanager

import numpy as np

from fuseflow.codegen import cuda_device as cd
from fuseflow.codegen import scalar
from fuseflow.codegen.fused import REDUCTIONS, FusedPlan, accumulator, single_op_region
from fuseflow.ir import dtypes as dt
from fuseflow.ir.core import Block, Op

CUDA_STATS = {"compiled": 0, "reused": 0, "launches": 0}
_CACHE: dict = {}


def block_size() -> int:
    """Threads per block (a power of two, for the tree reductions); small under the simulator."""
    return 16 if cd.simulated() else 256


def threads_for(work: int) -> int:
    """Threads per block for `work` elements: the power of two that covers it, between a warp (one
    thread under the simulator, where each thread is a Python thread) and `block_size`."""
    least = 1 if cd.simulated() else 32
    return max(least, min(block_size(), 1 << max(work - 1, 0).bit_length()))


def max_blocks() -> int:
    """The grid size cap: grid-stride loops cover the rest (few blocks keep the simulator fast)."""
    return 4 if cd.simulated() else 8192


class CudaFusedPlan(FusedPlan):
    """`FusedPlan` whose generated source is a CUDA kernel (see the module docstring)."""

    def _plan_stashes(self) -> dict:
        return {}  # recomputing an exp on a GPU is cheaper than a round trip through memory

    def _columns_fit(self) -> bool:
        return False  # column reductions map to one thread per column here (see `_generate`)

    def _subscript(self, v, store: bool = False) -> str:
        return "[0]" if v.type.shape == () else super()._subscript(v, store)

    def _generate(self) -> str:
        src, names, leaves = self._prologue(extra=("dims",))
        reductions = [op for op in self.ops if op.name in REDUCTIONS]
        self.per_thread = bool(reductions) and thread_per_row(self.domain, self.axes)
        if self.per_thread:  # each thread reduces its own rows: tid 0 of a block of one
            src("tid = 0")
            src("nthreads = 1")
            src("o = cuda.grid(1)")
            src("n_outer = " + " * ".join(["1"] + [f"n{d}" for d in self.outer]))
            loop, step = "while o < n_outer:", "o += cuda.gridsize(1)"
        elif reductions:
            self._shared_arrays(src, reductions)
            src("tid = cuda.threadIdx.x")
            src("nthreads = cuda.blockDim.x")
            src("o = cuda.blockIdx.x")
            src("n_outer = " + " * ".join(["1"] + [f"n{d}" for d in self.outer]))
            loop, step = "while o < n_outer:", "o += cuda.gridDim.x"
        else:
            src("o = cuda.grid(1)")
            src("n_outer = " + " * ".join(["1"] + [f"n{d}" for d in self.outer]))
            loop, step = "while o < n_outer:", "o += cuda.gridsize(1)"
        with src.block(loop):
            _decompose(src, "o", self.outer)
            self._body(src, leaves, names, reductions)
            src(step)
        return src.text()

    def _shared_arrays(self, src, reductions) -> None:
        for op in reductions:
            k = self.ops.index(op)
            src(f"sh{k} = cuda.shared.array({block_size()}, np.{_acc_type(op)})")
            if op.operands[0].type.dtype.is_floating and op.name in ("reduce_max", "reduce_min"):
                src(f"shn{k} = cuda.shared.array({block_size()}, np.int32)")

    def _body(self, src, leaves, names, reductions) -> None:
        for v in leaves:
            if v not in self._inner and v not in names:
                self._value(src, v, names)
        pending = [op for op in self.ops if op.name in REDUCTIONS or op.results[0] not in self._inner]
        self._emit_outer(src, pending, names)
        for op in reductions:
            self._emit_reduction(src, op, names)
            self._emit_outer(src, pending, names)
        inner_results = self._inner_results()
        if inner_results:
            with self._strided(src):
                local = dict(names)
                self._emit_cone(src, inner_results, local)
                for v in inner_results:
                    self._store(src, v, local)
        outer_results = [v for v in self.results if v not in inner_results]
        if outer_results and reductions and not self.per_thread:
            with src.block("if tid == 0:"):  # one thread of the block writes the row's results
                for v in outer_results:
                    self._store(src, v, dict(names))
        else:
            for v in outer_results:
                self._store(src, v, names)

    @contextmanager
    def _strided(self, src):
        """``for t in range(tid, count, nthreads)`` over the reduced elements (a while loop)."""
        src("t = tid")
        with src.block("while t < count:"):
            _decompose(src, "t", list(self.axes))
            yield
            src("t += nthreads")

    def _emit_reduction(self, src, op: Op, names) -> None:
        x = op.operands[0]
        k = self.ops.index(op)
        init, update, final = accumulator(op.name, x.type.dtype)
        nan = "{nan}" in update
        src(f"acc{k} = {init}")
        if nan:
            src(f"acc{k}_nan = False")
        with self._strided(src):
            local = dict(names)
            self._emit_cone(src, [x], local)
            src(update.format(acc=f"acc{k}", nan=f"acc{k}_nan", x=self._value(src, x, local)))
        if not self.per_thread:
            self._combine_in_block(src, op, k, nan)
        result = op.results[0]
        src(f"v{k} = {scalar.to_register(final.format(acc=f'acc{k}', nan=f'acc{k}_nan'), result.type.dtype)}")
        names[result] = f"v{k}"

    def _combine_in_block(self, src, op: Op, k: int, nan: bool) -> None:
        """The block's partial accumulators of reduction `k`, combined by a tree in shared memory."""
        x = op.operands[0]
        src(f"sh{k}[tid] = acc{k}")
        if nan:
            src(f"shn{k}[tid] = 1 if acc{k}_nan else 0")
        src("cuda.syncthreads()")
        src("s = nthreads // 2")
        with src.block("while s > 0:"):
            with src.block("if tid < s:"):
                src(f"sh{k}[tid] = {_combine(op, x.type.dtype).format(a=f'sh{k}[tid]', b=f'sh{k}[tid + s]')}")
                if nan:
                    src(f"shn{k}[tid] = shn{k}[tid] | shn{k}[tid + s]")
            src("cuda.syncthreads()")
            src("s = s // 2")
        src(f"acc{k} = sh{k}[0]")
        if nan:
            src(f"acc{k}_nan = shn{k}[0] != 0")
        src("cuda.syncthreads()")  # every thread has read the total before the next row reuses sh


def thread_per_row(domain, axes) -> bool:
    """True when a reduction is better done one thread per outer index than one block per outer index:
    the innermost dim is not reduced (neighbouring threads then read neighbouring elements, coalesced)
    and there are at least as many outer indices as reduced elements (a column sum over a batch)."""
    if not axes or len(domain) - 1 in axes:
        return False
    outer = int(np.prod([d for i, d in enumerate(domain) if i not in axes], dtype=np.int64))
    count = int(np.prod([domain[i] for i in axes], dtype=np.int64))
    return outer >= count


def _decompose(src, var: str, dims) -> None:
    """Loop indices ``i{d}`` (row-major over `dims`) from the linear index `var`."""
    if not dims:
        return
    src(f"rem = {var}")
    for d in reversed(dims[1:]):
        src(f"i{d} = rem % n{d}")
        src(f"rem = rem // n{d}")
    src(f"i{dims[0]} = rem")


def _acc_type(op: Op) -> str:
    dtype = op.operands[0].type.dtype
    if not dtype.is_floating:
        return "int64"
    if op.name in ("reduce_max", "reduce_min"):
        return scalar.register_type(dtype)
    return "float64"


def _combine(op: Op, dtype: dt.DType) -> str:
    """The expression combining two partial accumulators ``{a}`` and ``{b}`` of reduction `op`."""
    name = op.name
    if name in ("reduce_sum", "reduce_mean"):
        return "_h.radd({a}, {b})" if dtype.is_floating else "{a} + {b}"
    if name == "reduce_prod":
        return "_h.rmul({a}, {b})" if dtype.is_floating else "{a} * {b}"
    if dtype.is_floating:
        return "_h.rmax({a}, {b})" if name == "reduce_max" else "_h.rmin({a}, {b})"
    return "_h.maximum({a}, {b})" if name == "reduce_max" else "_h.minimum({a}, {b})"


# ----------------------------------------------------------------------------- compiled kernels


class CudaFusedKernel:
    """A compiled region on the GPU: ``kernel(*device_arrays)`` returns a tuple of new device arrays."""

    writes_into = True  # results may go into device buffers the executable planned (`out=`)

    def __init__(self, block: Block) -> None:
        plan = CudaFusedPlan(block)
        self.source = plan.source
        self._outs = [(v.type.shape, v.type.dtype.np) for v in block.terminator.operands]
        cuda = cd.cuda()
        self._consts = [cuda.to_device(np.ascontiguousarray(c).reshape(-1) if np.ndim(c) == 0 else
                                       np.ascontiguousarray(c)) for c in plan.consts]
        self._dims = cuda.to_device(np.array(list(plan.domain) or [1], dtype=np.int64))
        size = int(np.prod(plan.domain, dtype=np.int64))
        outer = int(np.prod([plan.domain[d] for d in plan.outer], dtype=np.int64))
        self._empty = size == 0
        if plan.axes and not plan.per_thread:  # a block per outer index, no more threads than reduced elements
            per_block = threads_for(size // max(outer, 1))
            blocks = min(outer, max_blocks())
        else:
            per_block = threads_for(outer)
            blocks = min(math.ceil(outer / per_block), max_blocks())
        # Configured at each launch: the simulator's kernel[grid, block] reconfigures the kernel object
        # itself, which ops sharing one source (and so one cached kernel) would overwrite.
        self._kernel = compile_cuda(plan.source)
        self.launch_config = (max(blocks, 1), per_block)

    def __call__(self, *inputs, out=None):
        """The results, in fresh device arrays or in `out` (device arrays of the result types)."""
        outs = out or tuple(cd.device_empty(shape, dtype) for shape, dtype in self._outs)
        if not self._empty:
            args = [cd.flat(a) if a.ndim == 0 else a for a in (*outs, *inputs, *self._consts)]
            CUDA_STATS["launches"] += 1
            self._kernel[self.launch_config](*args, self._dims)
        return outs


def compile_cuda(source: str):
    """The ``cuda.jit`` kernel of generated `source` (compiled on its first launch), cached by text."""
    kernel = _CACHE.get(source)
    if kernel is not None:
        CUDA_STATS["reused"] += 1
        return kernel
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<fuseflow-cuda-kernel-{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"np": cd.device_numpy(), "_h": cd.device_helpers(), "_m": cd.device_math(), "cuda": cd.cuda()}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102  (our own generated source)
    kernel = _CACHE[source] = cd.cuda().jit(namespace["kernel"])
    CUDA_STATS["compiled"] += 1
    return kernel


def compile_fused_cuda(block: Block) -> CudaFusedKernel:
    """One CUDA kernel for a region of elementwise ops and reductions."""
    return CudaFusedKernel(block)


def compile_single_cuda(op: Op) -> CudaFusedKernel:
    """An elementwise op or a reduction alone, as a one-op region."""
    return CudaFusedKernel(single_op_region(op))
