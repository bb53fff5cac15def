"""One loop nest per ``fused`` region: elementwise ops and reductions over one domain.

The domain is ``S`` (the shape all reductions of the region read, or the
broadcast of the yielded shapes when there are none) with reduced axes ``A``.
Outer loops walk the dims not in ``A`` (the first one over a range ``[lo, hi)`` the caller
gives, so large domains are split across cores by `codegen.threads`); values that do not vary along ``A`` are
computed once per outer iteration. Each reduction is one inner loop over ``A``
that recomputes its operand's elementwise cone in registers and accumulates;
after the reductions, one more inner loop computes and stores the yielded
values that vary along ``A``. Row softmax is thus: max loop, sum loop, store
loop, per row, with no intermediate arrays. A region without reductions is the
same nest with an empty ``A``: a plain elementwise loop. Values of a
``keepdims=False`` reduction (and what is computed from them) are indexed by
the outer dims alone.
"""

from __future__ import annotations

import numpy as np
from numba import types as nbt

from fuseflow.codegen import scalar
from fuseflow.codegen.driver import empty
from fuseflow.codegen.source import Source, array_arg, array_types, compile_kernel, kernel_header
from fuseflow.codegen.threads import WORKERS
from fuseflow.ir import dtypes as dt
from fuseflow.ir.core import Block, Op
from fuseflow.ir.opdefs import broadcast_shapes, normalized_axes

REDUCTIONS = ("reduce_sum", "reduce_prod", "reduce_mean", "reduce_max", "reduce_min")
# A domain this large is split across cores: below it, the hand-off to a worker (tens of us when
# BLAS's own threads still spin after a product) costs more than the half it saves. (The MLP
# step's 784x512 weight update right after its largest product: 1.15-1.17 ms per step serial,
# 1.17-1.23 split, on a 2-core VM.)
PARALLEL_MIN_ELEMENTS = 1 << 19


class FusedKernel:
    """A compiled region; ``kernel(*inputs)`` returns a tuple of new result arrays."""

    def __init__(self, block: Block, plan) -> None:
        self.source = plan.source
        results = block.terminator.operands
        self._outs = [(v.type.shape, v.type.dtype.np) for v in results]
        self._consts = [array_arg(np.asarray(c, order="C")) for c in plan.consts]
        self._dims = np.array(plan.domain, dtype=np.int64)
        types = array_types([v.type for v in results],
                            [a.type for a in block.args] + plan.const_types + [_dims_type(len(plan.domain))])
        self._kernel = kernel_for(plan, types)
        self._parallel = plan.parallel
        self._n = plan.domain[plan.outer[0]] if plan.outer else 1  # the split loop's trip count
        # the arguments after the inputs: the serial call also passes the whole range [0, n)
        self._tail = (*self._consts, self._dims) + (() if self._parallel else (0, self._n))
        self._half = any(v.type.dtype is dt.float16 for v in list(results) + list(block.args))
        self._dispatch = self._kernel.fast
        if len(self._outs) == 1:  # (the generator below costs more than a small kernel's whole call)
            (shape, dtype), = self._outs
            self._new_outputs = lambda: (np.empty(shape, dtype),)

    writes_into = True

    def _new_outputs(self):
        return tuple(np.empty(shape, dtype) for shape, dtype in self._outs)

    def __call__(self, *inputs, out=None):
        outs = out or self._new_outputs()
        if self._half:
            self._launch(self._kernel, (*map(array_arg, outs), *map(array_arg, inputs), *self._tail))
            return outs
        try:  # the common case: C-contiguous arrays straight to the compiled version
            if self._parallel:
                WORKERS.run(self._dispatch, (*outs, *inputs, *self._tail), self._n)
            else:
                self._dispatch(*outs, *inputs, *self._tail)
        except TypeError:  # a strided or read-only argument: the wrapper copies it
            self._launch(self._kernel, (*outs, *inputs, *self._tail))
        return outs

    def native(self, args, results, env, tag):
        """Driver source calling this kernel (see `codegen.driver`); None for split or float16 kernels."""
        if self._parallel or self._half:
            return None
        env[tag] = self._kernel.dispatcher
        tail = []
        for i, extra in enumerate(self._tail):
            if isinstance(extra, np.ndarray):
                env[f"{tag}_{i}"] = extra
                tail.append(f"{tag}_{i}")
            else:
                tail.append(repr(extra))
        lines = [empty(name, shape, dtype) for name, (shape, dtype) in zip(results, self._outs)]
        return lines + [f"{tag}({', '.join(results + args + tail)})"]

    def _launch(self, fn, args) -> None:
        if self._parallel:
            WORKERS.run(fn, args, self._n)
        else:
            fn(*args)


def _dims_type(rank):
    from fuseflow.ir.types import TensorType

    return TensorType(dt.int64, (rank,))


def kernel_for(plan, types):
    """The compiled kernel of `plan` (one version serves every size, split or not)."""
    return compile_kernel(plan.source, types + (nbt.uintp, nbt.uintp), native=True)


def compile_fused(block: Block) -> FusedKernel:
    """One kernel for a region of elementwise ops and reductions."""
    return FusedKernel(block, FusedPlan(block))


def compile_single(op: Op) -> FusedKernel:
    """An elementwise op or a reduction alone, compiled as a one-op region."""
    return compile_fused(single_op_region(op))


def single_op_region(op: Op) -> Block:
    """``^bb(args): r = op(args); yield r``."""
    block = Block([v.type for v in op.operands])
    inner = Op(op.name, block.args, dict(op.attrs), [r.type for r in op.results], loc=op.loc)
    block.ops = [inner, Op("yield", inner.results, {}, ())]
    return block


class FusedPlan:
    """The generated source of a region and what its kernel needs besides the inputs."""

    def __init__(self, block: Block) -> None:
        self.block = block
        self.ops = _live_ops(block)
        self.results = list(block.terminator.operands)
        reductions = [op for op in self.ops if op.name in REDUCTIONS]
        if reductions:
            self.domain = tuple(reductions[0].operands[0].type.shape)
            self.axes = normalized_axes(reductions[0])
        else:
            self.domain = tuple(broadcast_shapes(*[v.type.shape for v in self.results]))
            self.axes = ()
        self.outer = [d for d in range(len(self.domain)) if d not in self.axes]
        size = int(np.prod(self.domain, dtype=np.int64))
        self.parallel = bool(self.outer) and size >= PARALLEL_MIN_ELEMENTS
        # Scalar constants become typed literals in the source (LLVM folds them); others are arrays.
        self.literals = {op.results[0]: op.attrs["value"].item() for op in self.ops
                         if op.name == "constant" and op.results[0].type.shape == () and not op.results[0].dtype.is_string}
        constants = [op for op in self.ops if op.name == "constant" and op.results[0] not in self.literals]
        self.consts = [op.attrs["value"] for op in constants]
        self.const_types = [op.results[0].type for op in constants]
        self._const_index = {op.results[0]: i for i, op in enumerate(constants)}
        self._squeezed = self._squeezed_values()
        self._inner = self._inner_values()
        self._stash = self._plan_stashes()
        self._loads = 0
        self.columns = self._columns_fit()
        if self.columns:  # the reduced dims are walked by the (serial) outer loops
            self.parallel = False
        self.source = self._generate_columns() if self.columns else self._generate()

    # -- analysis
    def _squeezed_values(self) -> set:
        """Values indexed by the outer dims only: keepdims=False reductions and what follows them."""
        out = set()
        for op in self.ops:
            if (op.name in REDUCTIONS and not op.attrs["keepdims"] and self.axes) or \
                    any(v in out for v in op.operands):
                out.update(op.results)
        return out

    def _inner_values(self) -> set:
        """Values that vary along the reduced axes."""
        inner = set()
        for arg in self.block.args:
            if self._reads_inner(arg):
                inner.add(arg)
        for op in self.ops:
            if op.name == "constant":
                if self._reads_inner(op.results[0]):
                    inner.add(op.results[0])
            elif op.name not in REDUCTIONS and any(v in inner for v in op.operands):
                inner.update(op.results)
        return inner

    def _reads_inner(self, v) -> bool:
        if v in self._squeezed or not self.axes:
            return False
        offset = len(self.domain) - len(v.type.shape)
        return any(offset + j in self.axes and s != 1 for j, s in enumerate(v.type.shape))

    def _subscript(self, v, store: bool = False) -> str:
        """`v`'s element at the current loop index (numpy broadcasting against its index space).

        A load of a value invariant along the reduced axes reads index 0 there; a `store` writes the
        element at the current index (results that span the reduced axes are stored in the inner loop).
        """
        shape = v.type.shape
        if v in self._squeezed:
            space = [self.domain[d] for d in self.outer]
            names = [f"i{d}" for d in self.outer]
        else:
            space, names = list(self.domain), [f"i{d}" for d in range(len(self.domain))]
        offset = len(space) - len(shape)
        parts = []
        for j, s in enumerate(shape):
            d = offset + j
            inner_dim = v not in self._squeezed and d in self.axes
            # a value invariant along a reduced axis is read at 0 there, and stored at 0 when it has
            # size 1 there: it is stored after the reduction loops, whose index is out of scope then
            # (unset altogether when the reduced dims are empty)
            invariant = inner_dim and v not in self._inner and (not store or s == 1)
            parts.append("0" if (s == 1 and space[d] != 1) or invariant else names[d])
        return "[" + ", ".join(parts) + "]" if parts else "[()]"

    def _columns_fit(self) -> bool:
        """Whether the reductions are better walked in memory order, accumulating into arrays.

        When the last dim is not reduced (column sums: a bias gradient), the row-at-a-time nest
        would stride through memory; instead every dim is walked in order and each reduction keeps
        one accumulator per outer index. That needs the reduced values to be used only after all
        of them are known: by results and by ops over the outer dims alone.
        """
        reductions = [op for op in self.ops if op.name in REDUCTIONS]
        if not reductions or not self.axes or not self.outer or len(self.domain) - 1 in self.axes or self._stash:
            return False
        if any(normalized_axes(op) != self.axes or op.operands[0].type.shape != self.domain for op in reductions):
            return False
        if any(v.type.dtype is dt.float16 for v in list(self.block.args) + [r for op in self.ops for r in op.results]):
            return False
        after = self._after_reductions()
        if any(v in self._inner for v in after):
            return False
        return not any(v in after for op in reductions for v in self._cone([op.operands[0]]))

    def _after_reductions(self) -> set:
        """The reductions' results and every value computed from them."""
        after = set()
        for op in self.ops:
            if op.name in REDUCTIONS or any(v in after for v in op.operands):
                after.add(op.results[0])
        return after

    def _generate_columns(self) -> str:
        """Every dim in memory order; reductions into arrays indexed by the outer dims (see `_columns_fit`)."""
        src, names, _ = self._prologue()
        rank = len(self.domain)
        outer_shape = "(" + "".join(f"n{d}, " for d in self.outer) + ")"
        outer_index = "[" + ", ".join(f"i{d}" for d in self.outer) + "]"
        reductions = [op for op in self.ops if op.name in REDUCTIONS]
        finals = {}
        for op in reductions:
            k, x = self.ops.index(op), op.operands[0]
            init, update, final = accumulator(op.name, x.type.dtype)
            src(f"acc{k} = np.full({outer_shape}, {init})")
            if "{nan}" in update:
                src(f"acc{k}_nan = np.zeros({outer_shape}, np.bool_)")
            finals[op] = (update, final)
        post = self._after_reductions()
        with src.loops([f"i{d}" for d in range(rank)], [f"n{d}" for d in range(rank)]):
            local = dict(names)
            body = [v for v in self.results if v not in post] + [op.operands[0] for op in reductions]
            self._emit_cone(src, body, local)
            for v in self.results:
                if v not in post:
                    self._store(src, v, local)
            for op in reductions:
                k, (update, _) = self.ops.index(op), finals[op]
                src(update.format(acc=f"acc{k}{outer_index}", nan=f"acc{k}_nan{outer_index}",
                                  x=self._value(src, op.operands[0], local)))
        with src.loops([f"i{d}" for d in self.outer], [f"n{d}" for d in self.outer]):
            local = dict(names)
            for op, (_, final) in finals.items():
                k = self.ops.index(op)
                final = final.format(acc=f"acc{k}{outer_index}", nan=f"acc{k}_nan{outer_index}")
                src(f"v{k} = {scalar.to_register(final, op.results[0].type.dtype)}")
                local[op.results[0]] = f"v{k}"
            self._emit_cone(src, [v for v in self.results if v in post], local)
            for v in self.results:
                if v in post:
                    self._store(src, v, local)
        return src.text()

    # -- generation
    def _prologue(self, extra=("dims", "lo", "hi")):
        """The kernel's header, its sizes, and the scalar leaves loaded once: (source, names, leaves)."""
        src = Source(kernel_header(len(self.results), len(self.block.args),
                                   [f"const{i}" for i in range(len(self.consts))] + list(extra)))
        for d in range(len(self.domain)):
            src(f"n{d} = dims[{d}]")
        src("count = " + " * ".join(["1"] + [f"n{d}" for d in self.axes]))
        names: dict = {v: scalar.typed_const(value, v.type.dtype) for v, value in self.literals.items()}
        leaves = [v for v in list(self.block.args) + list(self._const_index) if self._is_used(v)]
        for v in leaves:
            if not v.type.shape:  # scalars: loaded once, before the loops
                self._value(src, v, names)
        return src, names, leaves

    def _generate(self) -> str:
        src, names, leaves = self._prologue()
        if self._streams():  # the same loop twice: ordinary stores, then streaming ones
            self._nest(src, dict(names), leaves, "lo, _h.stream_from(out0, lo, hi)")
            self._nest(src, names, leaves, "_h.stream_from(out0, lo, hi), hi")
        else:
            self._nest(src, names, leaves, "lo, hi")
        return src.text()

    def _streams(self) -> bool:
        """Whether the kernel may write its result with non-temporal stores (`helpers.stream_from`):
        one float32/float64 result over a flat domain, nothing reduced."""
        return (len(self.domain) == 1 and not self.axes and len(self.results) == 1
                and self.results[0].type.dtype in (dt.float32, dt.float64))

    def _nest(self, src, names, leaves, split_range: str) -> None:
        """The loop nest, its first loop over ``range(split_range)``."""
        outer_vars = [f"i{d}" for d in self.outer]
        bounds = [split_range] + [f"n{d}" for d in self.outer[1:]]
        with src.loops(outer_vars, bounds):
            for v in leaves:
                if v not in self._inner and v not in names:  # invariant along the reduced axes
                    self._value(src, v, names)
            pending = [op for op in self.ops if op.name in REDUCTIONS or op.results[0] not in self._inner]
            self._emit_outer(src, pending, names)
            for op in [op for op in self.ops if op.name in REDUCTIONS]:
                self._emit_reduction(src, op, names)
                self._emit_outer(src, pending, names)
            inner_results = self._inner_results()
            if inner_results:
                with src.loops([f"i{d}" for d in self.axes], [f"n{d}" for d in self.axes]):
                    local = dict(names)
                    for v, i in self._stash.items():  # read back, not recomputed
                        local[v] = f"s{i}"
                        src(f"s{i} = {scalar.load(f'out{i}' + self._subscript(self.results[i]), v.type.dtype)}")
                    self._emit_cone(src, inner_results, local)
                    for v in inner_results:
                        self._store(src, v, local)
            for v in self.results:
                if v not in inner_results:
                    self._store(src, v, names)

    def _store(self, src, v, names) -> None:
        i = self.results.index(v)
        src(f"out{i}{self._subscript(v, store=True)} = {scalar.store(self._value(src, v, names), v.type.dtype)}")

    def _value(self, src, v, names) -> str:
        """The register name of `v`, loading it first if it is a region input or constant."""
        if v not in names:
            array = f"const{self._const_index[v]}" if v in self._const_index else f"in{self.block.args.index(v)}"
            self._loads += 1
            name = f"a{self._loads}"
            src(f"{name} = {scalar.load(array + self._subscript(v), v.type.dtype)}")
            names[v] = name
        return names[v]

    def _earlier_reductions(self, op) -> list:
        return [r for r in self.ops[: self.ops.index(op)] if r.name in REDUCTIONS]

    def _emit_outer(self, src, pending: list, names: dict) -> None:
        """Emits the outer-level elementwise ops whose operands are now available."""
        for op in list(pending):
            if op.name in REDUCTIONS:
                if op.results[0] not in names:
                    return  # later outer ops may need this reduction: keep block order
                pending.remove(op)
                continue
            if op.name == "constant":
                pending.remove(op)
                continue
            if not all(v in names or self._is_leaf(v) for v in op.operands):
                return
            self._emit_op(src, op, names)
            pending.remove(op)

    def _inner_results(self) -> list:
        """Results that vary along the reduced axes, or only span them (a reduction broadcast back)."""
        return [v for v in self.results if v in self._inner or self._reads_inner(v)]

    def _cone(self, values) -> set:
        """The inner-level values computed (not loaded) on the way to `values`."""
        needed, stack = set(), list(values)
        while stack:
            v = stack.pop()
            if self._is_leaf(v) or v in needed or v not in self._inner:
                continue
            needed.add(v)
            stack.extend(v.owner.operands)
        return needed

    def _plan_stashes(self) -> dict:
        """Expensive values a reduction loop computes that the store loop needs again: each is parked
        in a full-domain output of its dtype (overwritten later by that output's own value) and read
        back instead of recomputed. Value -> output index."""
        if not self.axes:
            return {}
        final = self._cone(self._inner_results())
        free = [i for i, v in enumerate(self.results)
                if v.type.shape == self.domain and v in self._inner_results()]
        stash = {}
        for op in self.ops:
            if op.name not in REDUCTIONS:
                continue
            for v in sorted(self._cone([op.operands[0]]) & final, key=lambda v: self.ops.index(v.owner)):
                if v.owner.name in EXPENSIVE and v not in stash:
                    slot = next((i for i in free if self.results[i].type.dtype == v.type.dtype), None)
                    if slot is not None:
                        stash[v] = slot
                        free.remove(slot)
        return stash

    def _is_used(self, v) -> bool:
        return v in self.results or any(v in op.operands for op in self.ops)

    def _is_leaf(self, v) -> bool:
        return v in self._const_index or v in self.block.args or v in self.literals

    def _emit_cone(self, src, values, names) -> None:
        """Emits, in block order, the inner-level ops that `values` need."""
        needed, stack = set(), list(values)
        while stack:
            v = stack.pop()
            if v in names or self._is_leaf(v) or v in needed:
                continue
            needed.add(v)
            stack.extend(v.owner.operands)
        for op in self.ops:
            if op.results[0] in needed:
                self._emit_op(src, op, names)

    def _emit_op(self, src, op: Op, names) -> None:
        args = [self._value(src, v, names) for v in op.operands]
        result = op.results[0]
        known = [self.literals.get(v) for v in op.operands]
        expr = scalar.emit(op.name, args, [v.type.dtype for v in op.operands], op.attrs, result.type.dtype, known)
        name = f"v{self.ops.index(op)}"
        src(f"{name} = {expr}")
        names[result] = name

    def _emit_reduction(self, src, op: Op, names) -> None:
        x = op.operands[0]
        k = self.ops.index(op)
        init, update, final = accumulator(op.name, x.type.dtype)
        src(f"acc{k} = {init}")
        if "{nan}" in update:
            src(f"acc{k}_nan = False")
        # A float32 value summed in float64 and parked anyway: computed (8 lanes) in one loop, summed
        # from memory in a second. In one loop the float64 sum would halve the vector width of the
        # whole computation (softmax's exp: 43 -> 29 ms single-threaded on 4096x4096).
        split = x in self._stash and x.type.dtype is dt.float32 and "np.float64" in update
        with src.loops([f"i{d}" for d in self.axes], [f"n{d}" for d in self.axes]):
            local = dict(names)
            self._emit_cone(src, [x], local)
            if not split:
                src(update.format(acc=f"acc{k}", nan=f"acc{k}_nan", x=self._value(src, x, local)))
            for v, i in self._stash.items():
                if v in local and v not in names and not any(v in self._cone([r.operands[0]]) for r in
                                                             self._earlier_reductions(op)):
                    src(f"out{i}{self._subscript(self.results[i])} = {scalar.store(local[v], v.type.dtype)}")
        if split:
            with src.loops([f"i{d}" for d in self.axes], [f"n{d}" for d in self.axes]):
                i = self._stash[x]
                parked = scalar.load(f"out{i}" + self._subscript(self.results[i]), x.type.dtype)
                src(update.format(acc=f"acc{k}", nan=f"acc{k}_nan", x=parked))
        result = op.results[0]
        src(f"v{k} = {scalar.to_register(final.format(acc=f'acc{k}', nan=f'acc{k}_nan'), result.type.dtype)}")
        names[result] = f"v{k}"


# Ops worth parking in memory rather than computing twice (a load is cheaper).
EXPENSIVE = {"exp", "log", "log1p", "tanh", "sigmoid", "sin", "cos", "pow", "sqrt", "rsqrt", "div"}


def accumulator(name: str, dtype: dt.DType):
    """(initial value, update statement over {acc}, {nan} and {x}, final expression over {acc} and {nan}).

    Float sums, products and means accumulate in float64 through the reassociating combiners
    (so the loop vectorises); integers in int64; integer means truncate toward zero.
    """
    floating = dtype.is_floating
    if name in ("reduce_sum", "reduce_mean", "reduce_prod"):
        prod = name == "reduce_prod"
        if floating:
            init = "1.0" if prod else "0.0"
            update = "{acc} = _h." + ("rmul" if prod else "radd") + "({acc}, np.float64({x}))"
        else:
            init = f"np.int64({int(prod)})"
            update = "{acc} = {acc} " + ("*" if prod else "+") + " np.int64({x})"
        if name != "reduce_mean":
            return init, update, "{acc}"
        return init, update, ("{acc} / np.float64(count)" if floating else "_h.trunc_div_int({acc}, count)")
    lowest = name == "reduce_max"
    if floating:  # NaN is tracked beside the extreme, so the compare-and-pick loop vectorises
        init = scalar.typed_const(float("-inf") if lowest else float("inf"), dtype)
        update = ("{acc} = _h." + ("rmax" if lowest else "rmin") + "({acc}, {x}); "
                  "{nan} = {nan} | ({x} != {x})")
        return init, update, "(np.nan if {nan} else {acc})"
    else:
        init = f"np.int64({int(dtype.min if lowest else dtype.max)})"
        x = "np.int64({x})"
    return init, "{acc} = _h." + ("maximum" if lowest else "minimum") + "({acc}, " + x + ")", "{acc}"


def _live_ops(block: Block):
    """The region's ops that the yielded values need, in order."""
    needed = set(block.terminator.operands)
    live = []
    for op in reversed(block.ops[:-1]):
        if any(r in needed for r in op.results):
            live.append(op)
            needed.update(op.operands)
    return live[::-1]
