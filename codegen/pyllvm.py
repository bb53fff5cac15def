"""A compiler from the Python our kernels are written in to LLVM IR, with numba's semantics.

Generated kernels (`codegen.fused`) and the functions they call (`codegen.mathlib`,
`codegen.helpers`) are a small typed subset of Python: loops over ``range``, ``if``/``while``,
scalar arithmetic on numpy scalar types, C-contiguous array elements, calls of other such
functions. numba compiles that subset well but slowly: its first compile in a process costs
~0.3 s of set-up, and every kernel goes through its type inference and lowering. This module
translates the subset straight into one LLVM function, inlining every call at the Python level
(so the callee is typed for its actual arguments, as numba does), and `codegen.native` hands it
to LLVM. Anything outside the subset raises `Unsupported`, and the caller compiles with numba.

The semantics are numba's, so both compilers agree bit for bit:
- numpy's scalar promotion (float32 with an int gives float64); integer arithmetic in 64 bits;
  int + uint64 gives float64; a Python int constant is an int64, a Python float a float64;
- ``/`` is true division, ``//`` and ``%`` on ints round toward minus infinity;
- ``max(a, b)`` is ``b if b > a else a``, ``min`` likewise; casts are LLVM's (fptosi...);
- a negative signed index counts from the end; arrays are C-contiguous;
- no fast-math flags, except inside a function numba would compile with ``fastmath`` flags.
Two things numba does not do, neither of which changes a result: an innermost loop without
fast-math operations is interleaved (`INTERLEAVE`), and a loop starting at ``_h.stream_from(...)``
stores its vectors non-temporally (see `stream_from`).
A variable keeps the type of its first assignment; a later assignment of another type, or a
function whose returns disagree in type, is `Unsupported` (numba would unify them).
"""

from __future__ import annotations

import ast
import inspect
import math
import platform
import textwrap
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

# Vector iterations an innermost loop runs side by side. The vectoriser interleaves only small
# loop bodies by itself; a long one (GELU's tanh) is then one dependency chain of ~100 cycles per
# vector that out-of-order execution overlaps only partly: 25 ms single-threaded for GELU on 2^24
# float32, 12 ms at 4, 14 ms at 8 (spills), on a 2-core Rocket Lake VM.
INTERLEAVE = 4
# Results at least this large are written with non-temporal stores, which skip reading each line
# before it is overwritten (a fused kernel's output is a fresh or recycled buffer, beyond the
# caches at this size): a*b + c*d - exp(e) on five 2^24 float32 arrays, 13.6 -> 11.8 ms.
STREAM_MIN_BYTES = 1 << 24
STREAM_ALIGN = 64  # a streaming loop starts where its stores are aligned for any vector width
STREAM_HINT = "fuseflow.stream"  # the loop hint `codegen.native` looks for after vectorisation
STREAMS = platform.machine().lower() in ("x86_64", "amd64")  # x86's movnt stores; sfence orders them


class Unsupported(Exception):
    """Source outside the subset this compiler handles."""


# ----------------------------------------------------------------------------- types

BOOL = np.dtype(np.bool_)
I64, U64, F32, F64 = np.dtype(np.int64), np.dtype(np.uint64), np.dtype(np.float32), np.dtype(np.float64)


@dataclass(frozen=True)
class ArrayType:
    dtype: np.dtype
    ndim: int
    readonly: bool = True


def ll_type(t: np.dtype) -> ir.Type:
    if t == BOOL:
        return ir.IntType(1)
    if t.kind in "iu":
        return ir.IntType(8 * t.itemsize)
    if t == F32:
        return ir.FloatType()
    if t == F64:
        return ir.DoubleType()
    raise Unsupported(f"scalar type {t}")


def storage_type(t: np.dtype) -> ir.Type:
    """How an element of dtype `t` is stored in memory (bools as bytes)."""
    return ir.IntType(8) if t == BOOL else ll_type(t)


def _is_int(t) -> bool:
    return isinstance(t, np.dtype) and t.kind in "iu"


def _is_float(t) -> bool:
    return isinstance(t, np.dtype) and t.kind == "f"


def promote(a: np.dtype, b: np.dtype) -> np.dtype:
    """numba's result type of arithmetic on scalars of types `a` and `b`."""
    if a.kind == "f" or b.kind == "f":
        return np.promote_types(a, b)
    if a.kind == "u" and b.kind == "u":
        return U64
    if "u" in (a.kind, b.kind) and "i" in (a.kind, b.kind):
        wide = a if a.kind == "u" else b
        return F64 if wide.itemsize == 8 else I64
    return I64


def _intish(t: np.dtype) -> np.dtype:
    """Bools enter arithmetic as int64, as in numba."""
    return I64 if t == BOOL else t


def unify(a: np.dtype, b: np.dtype) -> np.dtype:
    """The one type of the two values a select (or ``max``/``min``) chooses between."""
    return a if a == b else promote(_intish(a), _intish(b))


def const_type(value) -> np.dtype:
    """The type numba gives a constant: bool, int64, float64 or the numpy scalar's own."""
    if isinstance(value, (bool, np.bool_)):
        return BOOL
    if isinstance(value, np.generic):
        return value.dtype
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise Unsupported(f"integer constant {value} beyond int64")
        return I64
    if isinstance(value, float):
        return F64
    raise Unsupported(f"constant {value!r}")


# ----------------------------------------------------------------------------- values


@dataclass
class Val:
    """An SSA value of a scalar type; `nonneg` when it is known not to be negative (a loop index)."""

    v: ir.Value
    t: np.dtype
    nonneg: bool = False


@dataclass
class Const:
    """A value known while translating: a number, a tuple, a function, a module, an array."""

    py: object


@dataclass
class Array:
    """An array argument: its element pointer and its dims (i64 values)."""

    data: ir.Value
    shape: list
    t: ArrayType


@dataclass
class Slot:
    """A variable: an alloca of a fixed scalar type. A `loop` variable is only ever set by its
    ``for`` over a range from a non-negative start, so it indexes without the wraparound test."""

    ptr: ir.Value
    t: np.dtype
    loop: bool = False


# ----------------------------------------------------------------------------- intrinsics

_INTRINSICS: dict = {}  # id of a numba @intrinsic of ours -> handler(translator, args) -> Val


def intrinsic(obj):
    """Registers a handler for calls of `obj` (a numba @intrinsic of ours)."""

    def deco(fn):
        _INTRINSICS[id(obj)] = fn
        return fn

    return deco


# ----------------------------------------------------------------------------- the translator


class _LoopID(ir.values.MDValue):
    """A loop's ``distinct`` metadata node holding `hints`, lists of a name and its operands
    (LLVM finds a loop's hints only in a node whose first operand is the node itself)."""

    def __init__(self, module: ir.Module, hints: list) -> None:
        nodes = [module.add_metadata([ir.MetaDataString(module, name), *rest]) for name, *rest in hints]
        super().__init__(module, nodes, name=str(len(module.metadata)))

    def descr(self, buf) -> None:
        refs = ", ".join(o.get_reference() for o in (self, *self.operands))
        buf += (f"distinct !{{ {refs} }}", "\n")


@dataclass
class Frame:
    """One function being inlined: its names, where `return` goes, its fast-math flags."""

    env: dict
    consts: dict
    fastmath: tuple = ()
    exit: ir.Block | None = None
    results: list | None = None  # one Slot per returned item, made by the first return
    loop_exits: list = field(default_factory=list)


class Translator:
    """Builds one LLVM function from the Python source of a kernel (see `translate_kernel`)."""

    def __init__(self, module: ir.Module, fn: ir.Function) -> None:
        self.module = module
        self.fn = fn
        self.entry = fn.append_basic_block("entry")
        self.builder = ir.IRBuilder(fn.append_basic_block("body"))
        self._globals: dict = {}
        self.allocations: list = []  # what the kernel's np.full / np.zeros took, freed when it returns
        self.nested = 0  # how deep in branches, loops and inlined calls the statement being built is
        # per loop being built: [whether it holds a loop, whether it holds fast-math code]
        self.loop_marks: list = []
        self.stream_start = None  # the value the latest stream_from returned

    # -- allocation
    def alloca(self, t: ir.Type) -> ir.Value:
        with self.builder.goto_block(self.entry):
            return self.builder.alloca(t)

    def new_slot(self, t: np.dtype) -> Slot:
        return Slot(self.alloca(ll_type(t)), t)

    # -- statements
    def nested_body(self, frame: Frame, stmts) -> None:
        self.nested += 1
        self.run_body(frame, stmts)
        self.nested -= 1

    def run_body(self, frame: Frame, stmts) -> None:
        for stmt in stmts:
            if self.builder.block.is_terminated:
                self.builder.position_at_end(self.fn.append_basic_block("dead"))
            self.stmt(frame, stmt)

    def stmt(self, frame: Frame, s) -> None:
        method = getattr(self, "stmt_" + type(s).__name__, None)
        if method is None:
            raise Unsupported(f"statement {type(s).__name__}: {ast.unparse(s)}")
        method(frame, s)

    def stmt_Pass(self, frame, s) -> None:
        pass

    def stmt_Expr(self, frame, s) -> None:
        self.expr(frame, s.value)

    def stmt_Assign(self, frame, s) -> None:
        value = self.expr(frame, s.value)
        for target in s.targets:
            self.assign(frame, target, value)

    def stmt_AugAssign(self, frame, s) -> None:
        load = ast.copy_location(_as_load(s.target), s)
        value = self.binop(frame, s.op, self.expr(frame, load), self.expr(frame, s.value))
        self.assign(frame, s.target, value)

    def assign(self, frame: Frame, target, value) -> None:
        if isinstance(target, ast.Name):
            self.bind(frame, target.id, value)
        elif isinstance(target, ast.Tuple):
            items = self.unpack(value, len(target.elts))
            for t, v in zip(target.elts, items):
                self.assign(frame, t, v)
        elif isinstance(target, ast.Subscript):
            array = self.expr(frame, target.value)
            if not isinstance(array, Array):
                raise Unsupported(f"store into {ast.unparse(target.value)}")
            ptr = self.element(frame, array, target.slice)
            self.builder.store(self.to_storage(self.scalar(value), array.t.dtype), ptr)
        else:
            raise Unsupported(f"assignment to {ast.unparse(target)}")

    def bind(self, frame: Frame, name: str, value, loop: bool = False) -> None:
        if isinstance(value, (Const, Array)) and not _is_number(value):
            if name in frame.env:
                raise Unsupported(f"rebinding '{name}'")
            frame.env[name] = value
            return
        value = self.scalar(value)
        slot = frame.env.get(name)
        if slot is None:
            slot = frame.env[name] = self.new_slot(value.t)
            slot.loop = loop
        elif not isinstance(slot, Slot) or slot.t != value.t:
            raise Unsupported(f"'{name}' assigned values of two types")
        elif slot.loop != loop:
            raise Unsupported(f"loop variable '{name}' assigned elsewhere")
        self.builder.store(value.v, slot.ptr)

    def unpack(self, value, n: int) -> list:
        if isinstance(value, tuple) and len(value) == n:
            return list(value)
        if isinstance(value, Const) and isinstance(value.py, tuple) and len(value.py) == n:
            return [Const(x) for x in value.py]
        raise Unsupported("unpacking something that is not a tuple of the right length")

    def stmt_If(self, frame, s) -> None:
        cond = self.truth(self.expr(frame, s.test))
        then_block = self.fn.append_basic_block("then")
        else_block = self.fn.append_basic_block("else")
        merge = self.fn.append_basic_block("endif")
        self.builder.cbranch(cond.v, then_block, else_block)
        for block, body in ((then_block, s.body), (else_block, s.orelse)):
            self.builder.position_at_end(block)
            self.nested_body(frame, body)
            if not self.builder.block.is_terminated:
                self.builder.branch(merge)
        self.builder.position_at_end(merge)

    def stmt_While(self, frame, s) -> None:
        if s.orelse:
            raise Unsupported("while ... else")
        head, body, done = (self.fn.append_basic_block(n) for n in ("while", "wbody", "wend"))
        self.builder.branch(head)
        self.builder.position_at_end(head)
        self.builder.cbranch(self.truth(self.expr(frame, s.test)).v, body, done)
        self.builder.position_at_end(body)
        self.loop_body(frame, s.body, done, head)

    def loop_body(self, frame: Frame, stmts, done: ir.Block, back: ir.Block) -> None:
        """A loop's statements (``break`` goes to `done`), then the jump `back` to its head or step."""
        frame.loop_exits.append(done)
        self.nested_body(frame, stmts)
        frame.loop_exits.pop()
        if not self.builder.block.is_terminated:
            self.builder.branch(back)
        self.builder.position_at_end(done)

    def stmt_For(self, frame, s) -> None:
        call = s.iter
        if (s.orelse or not isinstance(s.target, ast.Name) or not isinstance(call, ast.Call)
                or ast.unparse(call.func) != "range" or not 1 <= len(call.args) <= 2 or call.keywords):
            raise Unsupported(f"loop {ast.unparse(s.iter)}")
        bounds = [self.scalar(self.expr(frame, a)) for a in call.args]
        if len(bounds) == 1:
            bounds.insert(0, Val(ir.Constant(ir.IntType(64), 0), I64))
        if any(not _is_int(b.t) for b in bounds):
            raise Unsupported("range over non-integers")
        # numba: a range of unsigned bounds counts in uint64, anything else in int64
        kind = U64 if all(b.t.kind == "u" for b in bounds) else I64
        start, stop = (self.cast(b, kind).v for b in bounds)
        counter = self.alloca(ir.IntType(64))
        self.builder.store(start, counter)
        head, body, step, done = (self.fn.append_basic_block(n) for n in ("for", "fbody", "fstep", "fend"))
        self.builder.branch(head)
        self.builder.position_at_end(head)
        i = self.builder.load(counter)
        less = self.builder.icmp_unsigned("<", i, stop) if kind == U64 else self.builder.icmp_signed("<", i, stop)
        self.builder.cbranch(less, body, done)
        self.builder.position_at_end(body)
        first = call.args[0] if len(call.args) == 2 else ast.Constant(0)
        nonneg = kind == U64 or isinstance(first, ast.Constant) and first.value >= 0 or bounds[0].nonneg
        self.bind(frame, s.target.id, Val(i, kind), loop=nonneg)
        if self.loop_marks:
            self.loop_marks[-1][0] = True
        self.loop_marks.append([False, False])
        self.loop_body(frame, s.body, done, step)
        holds_loop, fast = self.loop_marks.pop()
        with self.builder.goto_block(step):
            self.builder.store(self.builder.add(self.builder.load(counter), ir.Constant(ir.IntType(64), 1)), counter)
            back = self.builder.branch(head)
        hints = [] if holds_loop or fast else [("llvm.loop.interleave.count", ir.Constant(ir.IntType(32), INTERLEAVE))]
        if bounds[0].v is self.stream_start:
            hints.append((STREAM_HINT,))
            # non-temporal stores are weakly ordered: fence them before anyone reads the result
            sfence = self.module.globals.get("llvm.x86.sse.sfence") or \
                ir.Function(self.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
            self.builder.call(sfence, [])
        if hints:
            back.set_metadata("llvm.loop", _LoopID(self.module, hints))

    def stmt_Break(self, frame, s) -> None:
        if not frame.loop_exits:
            raise Unsupported("break outside a loop")
        self.builder.branch(frame.loop_exits[-1])

    def stmt_Return(self, frame, s) -> None:
        if frame.exit is None:  # the kernel itself
            if s.value is not None:
                raise Unsupported("a kernel returning a value")
            self.kernel_return(0)
            return
        value = self.expr(frame, s.value)
        items = list(value) if isinstance(value, tuple) else [value]
        items = [self.scalar(v) for v in items]
        if frame.results is None:
            frame.results = [self.new_slot(v.t) for v in items]
        if len(items) != len(frame.results) or any(v.t != r.t for v, r in zip(items, frame.results)):
            raise Unsupported("returns of different types")
        for v, r in zip(items, frame.results):
            self.builder.store(v.v, r.ptr)
        self.builder.branch(frame.exit)

    # -- expressions
    def expr(self, frame: Frame, e):
        method = getattr(self, "expr_" + type(e).__name__, None)
        if method is None:
            raise Unsupported(f"expression {ast.unparse(e)}")
        return method(frame, e)

    def expr_Constant(self, frame, e):
        return Const(e.value)

    def expr_Tuple(self, frame, e):
        return tuple(self.expr(frame, x) for x in e.elts)

    def expr_Name(self, frame, e):
        if e.id in frame.env:
            value = frame.env[e.id]
            return Val(self.builder.load(value.ptr), value.t, value.loop) if isinstance(value, Slot) else value
        if e.id in frame.consts:
            return Const(frame.consts[e.id])
        if e.id in _BUILTINS:
            return Const(_BUILTINS[e.id])
        raise Unsupported(f"unknown name '{e.id}'")

    def expr_Attribute(self, frame, e):
        base = self.expr(frame, e.value)
        if not isinstance(base, Const):
            raise Unsupported(f"attribute of a runtime value: {ast.unparse(e)}")
        try:
            return Const(getattr(base.py, e.attr))
        except AttributeError:
            raise Unsupported(f"no attribute {ast.unparse(e)}") from None

    def expr_Subscript(self, frame, e):
        base = self.expr(frame, e.value)
        if isinstance(base, Array):
            return self.load(base, self.element(frame, base, e.slice))
        index = self.expr(frame, e.slice)
        if isinstance(base, tuple) and isinstance(index, Const):
            return base[index.py]
        if isinstance(base, Const) and isinstance(base.py, tuple) and isinstance(index, Const):
            return Const(base.py[index.py])
        if isinstance(base, Const) and isinstance(base.py, np.ndarray):
            return self.load(self.global_array(base.py), self.element(frame, self.global_array(base.py), e.slice))
        raise Unsupported(f"subscript {ast.unparse(e)}")

    def expr_BinOp(self, frame, e):
        left, right = self.expr(frame, e.left), self.expr(frame, e.right)
        folded = _fold(e.op, left, right)
        return folded if folded is not None else self.binop(frame, e.op, left, right)

    def expr_UnaryOp(self, frame, e):
        x = self.expr(frame, e.operand)
        if isinstance(e.op, ast.USub) and isinstance(x, Const) and type(x.py) in (int, float):
            return Const(-x.py)  # a negative literal, as numba types it
        x = self.scalar(x)
        b = self.builder
        if isinstance(e.op, ast.Not):
            return Val(b.not_(self.truth(x).v), BOOL)
        if isinstance(e.op, ast.UAdd):
            return x
        if isinstance(e.op, ast.USub):
            if x.t == BOOL:
                x = self.cast(x, I64)
            return Val(b.fneg(x.v) if _is_float(x.t) else b.neg(x.v), x.t)
        if isinstance(e.op, ast.Invert) and _is_int(x.t):
            return Val(b.not_(x.v), x.t)
        raise Unsupported(f"unary {ast.unparse(e)}")

    def expr_BoolOp(self, frame, e):
        # both sides are evaluated: the subset's operands have no side effects
        values = [self.truth(self.expr(frame, v)).v for v in e.values]
        acc = values[0]
        for v in values[1:]:
            acc = self.builder.and_(acc, v) if isinstance(e.op, ast.And) else self.builder.or_(acc, v)
        return Val(acc, BOOL)

    def expr_Compare(self, frame, e):
        left = self.expr(frame, e.left)
        result = None
        for op, right_e in zip(e.ops, e.comparators):
            right = self.expr(frame, right_e)
            c = self.compare(op, left, right)
            result = c if result is None else Val(self.builder.and_(result.v, c.v), BOOL)
            left = right
        return result

    def expr_IfExp(self, frame, e):
        cond = self.truth(self.expr(frame, e.test))
        a, b = self.scalar(self.expr(frame, e.body)), self.scalar(self.expr(frame, e.orelse))
        t = unify(a.t, b.t)
        return Val(self.builder.select(cond.v, self.cast(a, t).v, self.cast(b, t).v), t)

    def expr_Call(self, frame, e):
        if e.keywords:
            raise Unsupported(f"keyword arguments in {ast.unparse(e)}")
        fn = self.expr(frame, e.func)
        if not isinstance(fn, Const):
            raise Unsupported(f"call of a runtime value: {ast.unparse(e)}")
        args = [self.expr(frame, a) for a in e.args]
        return self.call(fn.py, args, ast.unparse(e.func))

    # -- calls
    def call(self, fn, args: list, name: str):
        if fn is np.full or fn is np.zeros:
            return self.allocate(args, fn is np.full)
        handler = _INTRINSICS.get(id(fn))
        if handler is not None:
            return handler(self, args)
        if isinstance(fn, type) and issubclass(fn, np.generic) and len(args) == 1:
            return self.cast(self.scalar(args[0]), np.dtype(fn))
        builtin = _CALLS.get(id(fn))
        if builtin is not None:
            return builtin(self, [self.scalar(a) for a in args])
        py_func = getattr(fn, "py_func", None)
        if py_func is None:
            raise Unsupported(f"call of {name}")
        flags = getattr(fn, "targetoptions", {}).get("fastmath") or ()
        return self.inline(py_func, args, ("fast",) if flags is True else tuple(sorted(flags)))

    def inline(self, py_func, args: list, fastmath: tuple):
        tree, consts = _parse(py_func)
        params = [a.arg for a in tree.args.args]
        if len(params) != len(args) or tree.args.vararg or tree.args.kwonlyargs or tree.args.defaults:
            raise Unsupported(f"call of {py_func.__name__} with {len(args)} arguments")
        frame = Frame({}, consts, fastmath, exit=self.fn.append_basic_block(f"{py_func.__name__}.exit"))
        if fastmath:  # a reassociated reduction: the vectoriser chooses how to split it, as in numba
            for mark in self.loop_marks:
                mark[1] = True
        for p, a in zip(params, args):
            self.bind(frame, p, a)
        self.nested_body(frame, tree.body)
        if not self.builder.block.is_terminated:
            raise Unsupported(f"{py_func.__name__} can end without a return")
        self.builder.position_at_end(frame.exit)
        if frame.results is None:
            raise Unsupported(f"{py_func.__name__} returns nothing")
        values = [Val(self.builder.load(r.ptr), r.t) for r in frame.results]
        return values[0] if len(values) == 1 else tuple(values)

    # -- memory the kernel allocates
    def allocate(self, args: list, full: bool) -> Array:
        """``np.full(shape, value)`` or ``np.zeros(shape, dtype)``: a C array from malloc, freed at the
        kernel's return. Only at the kernel's top level, so every return sees it allocated."""
        if self.nested or len(args) != 2:
            raise Unsupported("np.full / np.zeros inside a branch, loop or call, or without two arguments")
        shape = list(args[0]) if isinstance(args[0], tuple) else [args[0]]
        dims = [self.cast(self.scalar(d), I64).v for d in shape]
        if full:
            value = self.scalar(args[1])
        else:
            if not isinstance(args[1], Const):
                raise Unsupported("np.zeros of a computed dtype")
            dtype = np.dtype(args[1].py)
            value = Val(self.constant(0, dtype), dtype)
        b, i64 = self.builder, ir.IntType(64)
        count = ir.Constant(i64, 1)
        for d in dims:
            count = b.mul(count, d)
        size = b.mul(count, ir.Constant(i64, value.t.itemsize))
        size = b.select(b.icmp_unsigned("==", size, ir.Constant(i64, 0)), ir.Constant(i64, 1), size)
        i8p = ir.IntType(8).as_pointer()
        malloc = self.module.globals.get("malloc") or ir.Function(self.module, ir.FunctionType(i8p, [i64]), "malloc")
        raw = b.call(malloc, [size])
        failed, go_on = self.fn.append_basic_block("no_memory"), self.fn.append_basic_block("allocated")
        b.cbranch(b.icmp_unsigned("==", raw, ir.Constant(i8p, None)), failed, go_on)
        b.position_at_end(failed)
        self.kernel_return(2)
        b.position_at_end(go_on)
        self.allocations.append(raw)
        data = b.bitcast(raw, storage_type(value.t).as_pointer())
        self.fill(data, count, self.to_storage(value, value.t))
        return Array(data, dims, ArrayType(value.t, len(dims), readonly=False))

    def fill(self, data: ir.Value, count: ir.Value, value: ir.Value) -> None:
        b, i64 = self.builder, ir.IntType(64)
        index = self.alloca(i64)
        b.store(ir.Constant(i64, 0), index)
        head, body, done = (self.fn.append_basic_block(n) for n in ("fill", "fill_body", "filled"))
        b.branch(head)
        b.position_at_end(head)
        i = b.load(index)
        b.cbranch(b.icmp_unsigned("<", i, count), body, done)
        b.position_at_end(body)
        b.store(value, b.gep(data, [i], inbounds=True))
        b.store(b.add(i, ir.Constant(i64, 1)), index)
        b.branch(head)
        b.position_at_end(done)

    def kernel_return(self, code: int) -> None:
        """Frees what the kernel allocated so far and returns `code` (0 done, 2 out of memory)."""
        i8p = ir.IntType(8).as_pointer()
        free = self.module.globals.get("free") or ir.Function(self.module, ir.FunctionType(ir.VoidType(), [i8p]), "free")
        for raw in self.allocations:
            self.builder.call(free, [raw])
        self.builder.ret(ir.Constant(ir.IntType(32), code))

    # -- scalars
    def scalar(self, value) -> Val:
        if isinstance(value, Val):
            return value
        if isinstance(value, Const) and _is_number(value):
            t = const_type(value.py)
            return Val(self.constant(value.py, t), t)
        raise Unsupported(f"not a scalar: {value!r}")

    def constant(self, py, t: np.dtype) -> ir.Constant:
        if t == BOOL:
            return ir.Constant(ir.IntType(1), int(bool(py)))
        if t.kind in "iu":
            return ir.Constant(ll_type(t), int(py) & ((1 << (8 * t.itemsize)) - 1))
        return ir.Constant(ll_type(t), float(py))

    def truth(self, value) -> Val:
        x = self.scalar(value)
        if x.t == BOOL:
            return x
        if _is_int(x.t):
            return Val(self.builder.icmp_unsigned("!=", x.v, ir.Constant(x.v.type, 0)), BOOL)
        return Val(self.builder.fcmp_unordered("!=", x.v, ir.Constant(x.v.type, 0.0)), BOOL)

    def cast(self, x: Val, t: np.dtype) -> Val:
        if x.t == t:
            return x
        b, dst = self.builder, ll_type(t)
        if t == BOOL:
            return self.truth(x)
        if x.t == BOOL:
            return Val(b.uitofp(x.v, dst) if _is_float(t) else b.zext(x.v, dst), t)
        if _is_float(x.t) and _is_float(t):
            return Val(b.fpext(x.v, dst) if t.itemsize > x.t.itemsize else b.fptrunc(x.v, dst), t)
        if _is_float(x.t):
            return Val(b.fptosi(x.v, dst) if t.kind == "i" else b.fptoui(x.v, dst), t)
        if _is_float(t):
            return Val(b.sitofp(x.v, dst) if x.t.kind == "i" else b.uitofp(x.v, dst), t)
        if t.itemsize == x.t.itemsize:
            return Val(x.v, t)
        if t.itemsize < x.t.itemsize:
            return Val(b.trunc(x.v, dst), t)
        return Val(b.sext(x.v, dst) if x.t.kind == "i" else b.zext(x.v, dst), t)

    def binop(self, frame: Frame, op, left, right) -> Val:
        a, c = self.scalar(left), self.scalar(right)
        b = self.builder
        kind = type(op).__name__
        if kind in ("BitAnd", "BitOr", "BitXor"):
            if a.t == BOOL and c.t == BOOL:
                t = BOOL
            elif _is_int(a.t) and _is_int(c.t) or BOOL in (a.t, c.t):
                t = promote(_intish(a.t), _intish(c.t))
            else:
                raise Unsupported("bitwise operation on floats")
            x, y = self.cast(a, t).v, self.cast(c, t).v
            return Val({"BitAnd": b.and_, "BitOr": b.or_, "BitXor": b.xor}[kind](x, y), t)
        if kind in ("LShift", "RShift"):
            if not (_is_int(a.t) and _is_int(c.t)):
                raise Unsupported("shift of a non-integer")
            t = promote(a.t, c.t)
            x, y = self.cast(a, t).v, self.cast(c, t).v
            if kind == "LShift":
                return Val(b.shl(x, y), t)
            return Val(b.lshr(x, y) if t.kind == "u" else b.ashr(x, y), t)
        t = promote(_intish(a.t), _intish(c.t))
        if kind == "Div" and not _is_float(t):
            t = F64
        x, y = self.cast(a, t).v, self.cast(c, t).v
        if _is_float(t):
            flags = frame.fastmath
            float_ops = {"Add": b.fadd, "Sub": b.fsub, "Mult": b.fmul, "Div": b.fdiv}
            if kind in float_ops:
                return Val(float_ops[kind](x, y, flags=flags), t)
            raise Unsupported(f"float operator {kind}")
        int_ops = {"Add": b.add, "Sub": b.sub, "Mult": b.mul}
        if kind in int_ops:
            return Val(int_ops[kind](x, y), t)
        if kind in ("FloorDiv", "Mod"):
            return Val(self.floor_divmod(x, y, t, kind == "Mod"), t)
        raise Unsupported(f"integer operator {kind}")

    def floor_divmod(self, x, y, t, want_mod: bool):
        """Python's ``x // y`` or ``x % y`` (rounding toward minus infinity), as numba lowers it."""
        b = self.builder
        if t.kind == "u":
            return b.urem(x, y) if want_mod else b.udiv(x, y)
        zero = ir.Constant(x.type, 0)
        q, r = b.sdiv(x, y), b.srem(x, y)
        adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("!=", b.xor(r, y), zero))
        adjust = b.and_(adjust, b.icmp_signed("<", b.xor(r, y), zero))
        if want_mod:
            return b.select(adjust, b.add(r, y), r)
        return b.select(adjust, b.sub(q, ir.Constant(x.type, 1)), q)

    def compare(self, op, left, right) -> Val:
        a, c = self.scalar(left), self.scalar(right)
        symbol = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">="}.get(type(op).__name__)
        if symbol is None:
            raise Unsupported(f"comparison {type(op).__name__}")
        t = promote(_intish(a.t), _intish(c.t)) if (a.t, c.t) != (BOOL, BOOL) else BOOL
        x, y = self.cast(a, t).v, self.cast(c, t).v
        b = self.builder
        if _is_float(t):
            # numba: ordered comparisons, except != which is true for NaN
            v = b.fcmp_unordered(symbol, x, y) if symbol == "!=" else b.fcmp_ordered(symbol, x, y)
        elif t.kind == "i":
            v = b.icmp_signed(symbol, x, y)
        else:
            v = b.icmp_unsigned(symbol, x, y)
        return Val(v, BOOL)

    # -- arrays
    def element(self, frame: Frame, array: Array, index_node) -> ir.Value:
        """The address of ``array[index]`` (C order; a negative signed index counts from the end)."""
        parts = index_node.elts if isinstance(index_node, ast.Tuple) else [index_node]
        if len(parts) != array.t.ndim:
            raise Unsupported(f"{len(parts)} indices into an array of {array.t.ndim} dims")
        b = self.builder
        offset = ir.Constant(ir.IntType(64), 0)
        for part, dim in zip(parts, array.shape):
            i = self.scalar(self.expr(frame, part))
            if not _is_int(i.t):
                raise Unsupported("a non-integer index")
            iv = self.cast(i, I64 if i.t.kind == "i" else U64).v
            if i.t.kind == "i" and not i.nonneg:
                iv = b.select(b.icmp_signed("<", iv, ir.Constant(iv.type, 0)), b.add(iv, dim), iv)
            offset = b.add(b.mul(offset, dim), iv)
        return b.gep(array.data, [offset], inbounds=True)

    def load(self, array: Array, ptr) -> Val:
        value = self.builder.load(ptr)
        if array.t.dtype == BOOL:
            value = self.builder.icmp_unsigned("!=", value, ir.Constant(ir.IntType(8), 0))
        return Val(value, array.t.dtype)

    def to_storage(self, value: Val, dtype: np.dtype) -> ir.Value:
        value = self.cast(value, dtype)
        return self.builder.zext(value.v, ir.IntType(8)) if dtype == BOOL else value.v

    def global_array(self, arr: np.ndarray) -> Array:
        """A read-only module-level table (e.g. mathlib's Payne-Hanek bits) as a constant global."""
        key = id(arr)
        if key not in self._globals:
            elem = storage_type(arr.dtype)
            flat = [self.constant(v, arr.dtype) for v in arr.ravel().tolist()]
            init = ir.Constant(ir.ArrayType(elem, len(flat)), flat)
            g = ir.GlobalVariable(self.module, init.type, name=f"table{len(self._globals)}")
            g.initializer, g.global_constant, g.linkage = init, True, "internal"
            data = g.bitcast(elem.as_pointer())
            shape = [ir.Constant(ir.IntType(64), d) for d in arr.shape]
            self._globals[key] = Array(data, shape, ArrayType(arr.dtype, arr.ndim))
        return self._globals[key]

    # -- LLVM intrinsics
    def llvm_call(self, name: str, args: list, t: np.dtype, flags=()) -> Val:
        lt = ll_type(t)
        full = f"{name}.{'f32' if t == F32 else 'f64'}"
        fn = self.module.globals.get(full) or ir.Function(self.module, ir.FunctionType(lt, [lt] * len(args)), full)
        return Val(self.builder.call(fn, [a.v for a in args], fastmath=flags), t)


def _is_number(value) -> bool:
    return isinstance(value, Const) and isinstance(value.py, (bool, int, float, np.number, np.bool_))


_FOLDABLE = {"Add": float.__add__, "Sub": float.__sub__, "Mult": float.__mul__, "Div": float.__truediv__,
             "Pow": float.__pow__}


def _fold(op, left, right) -> Const | None:
    """Arithmetic on a Python float and a float or int constant, done now: Python floats are IEEE
    doubles, so the value is the one numba's float64 code computes (``0.75 * 2.0**-23`` in mathlib)."""
    if not (isinstance(left, Const) and isinstance(right, Const)):
        return None
    a, b = left.py, right.py
    fn = _FOLDABLE.get(type(op).__name__)
    if fn is None or type(a) is not float or type(b) not in (float, int):
        return None
    if type(b) is int and not (abs(b) < 2**53 and (fn is not float.__pow__ or a == 2.0)):
        return None  # numba raises a float to an int power by squaring: fold only exact powers of 2
    try:
        return Const(fn(a, b))
    except (ZeroDivisionError, OverflowError):
        return None


def _as_load(target):
    """The expression reading an assignment's `target` (``x[i]`` of ``x[i] += 1``)."""
    return ast.parse(ast.unparse(target), mode="eval").body


# ----------------------------------------------------------------------------- parsed sources

_PARSED: dict = {}


def _parse(py_func):
    """(FunctionDef, names it can see) of a Python function, parsed once."""
    key = py_func
    if key not in _PARSED:
        try:
            source = textwrap.dedent(inspect.getsource(py_func))
        except (OSError, TypeError):
            raise Unsupported(f"no source for {py_func.__name__}") from None
        tree = ast.parse(source).body[0]
        if not isinstance(tree, ast.FunctionDef):
            raise Unsupported(f"{py_func.__name__} is not a plain function")
        tree.decorator_list = []
        consts = dict(py_func.__globals__)
        if py_func.__closure__:
            consts.update(zip(py_func.__code__.co_freevars, (c.cell_contents for c in py_func.__closure__)))
        _PARSED[key] = (tree, consts)
    return _PARSED[key]


# ----------------------------------------------------------------------------- builtins


def _float_only(name):
    def handler(tr: Translator, args):
        (x,) = args
        if not _is_float(x.t):
            x = tr.cast(x, F64)
        return tr.llvm_call(name, [x], x.t)

    return handler


def _isnan(tr: Translator, args):
    (x,) = args
    if not _is_float(x.t):
        return Val(ir.Constant(ir.IntType(1), 0), BOOL)
    return Val(tr.builder.fcmp_unordered("uno", x.v, x.v), BOOL)


def _binary_float(name):
    def handler(tr: Translator, args):
        a, c = args
        t = promote(_intish(a.t), _intish(c.t))
        if not _is_float(t):
            t = F64
        return tr.llvm_call(name, [tr.cast(a, t), tr.cast(c, t)], t)

    return handler


def _fmod(tr: Translator, args):
    a, c = args
    t = promote(a.t, c.t)
    if not _is_float(t):
        raise Unsupported("integer fmod")
    return Val(tr.builder.frem(tr.cast(a, t).v, tr.cast(c, t).v), t)


def _abs(tr: Translator, args):
    (x,) = args
    if _is_float(x.t):
        return tr.llvm_call("llvm.fabs", [x], x.t)
    x = tr.cast(x, _intish(x.t))
    b = tr.builder
    return Val(b.select(b.icmp_signed("<", x.v, ir.Constant(x.v.type, 0)), b.neg(x.v), x.v), x.t)


def _extreme(greater: bool):
    def handler(tr: Translator, args):
        acc = args[0]
        for v in args[1:]:  # numba: select(v > acc, v, acc), pairwise from the left
            t = unify(acc.t, v.t)
            a, c = tr.cast(acc, t), tr.cast(v, t)
            pred = tr.compare(ast.Gt() if greater else ast.Lt(), c, a)
            acc = Val(tr.builder.select(pred.v, c.v, a.v), t)
        return acc

    return handler


_CALLS = {
    id(np.sqrt): _float_only("llvm.sqrt"), id(np.floor): _float_only("llvm.floor"),
    id(np.ceil): _float_only("llvm.ceil"), id(np.rint): _float_only("llvm.rint"),
    id(np.isnan): _isnan, id(math.isnan): _isnan,
    id(np.copysign): _binary_float("llvm.copysign"), id(math.copysign): _binary_float("llvm.copysign"),
    id(np.power): _binary_float("llvm.pow"), id(np.fmod): _fmod,
    id(abs): _abs, id(max): _extreme(True), id(min): _extreme(False),
}
_BUILTINS = {"abs": abs, "max": max, "min": min, "range": range}


def translate_kernel(source: str, arg_types: list, name: str, namespace: dict) -> ir.Module:
    """An LLVM module with ``i32 name(args...)``: 0 after running ``kernel`` of `source`, 1 when an
    array argument is not what `arg_types` says (the caller then takes another path), 2 when an
    allocation failed.

    Array arguments arrive as numpy array objects and are read through `array_fields` offsets.
    """
    from fuseflow.codegen.native import array_prologue  # the ABI of array objects lives there

    tree = ast.parse(source).body[0]
    if not isinstance(tree, ast.FunctionDef) or len(tree.args.args) != len(arg_types):
        raise Unsupported("a kernel must be one function taking its arguments")
    module = ir.Module(name=name)
    params = [ir.IntType(8).as_pointer() if isinstance(t, ArrayType) else ll_type(t) for t in arg_types]
    fn = ir.Function(module, ir.FunctionType(ir.IntType(32), params), name)
    tr = Translator(module, fn)
    frame = Frame({}, namespace)
    mismatch = fn.append_basic_block("mismatch")
    for arg, t, p in zip(tree.args.args, arg_types, fn.args):
        if isinstance(t, ArrayType):
            frame.env[arg.arg] = array_prologue(tr, p, t, mismatch)
        else:
            tr.bind(frame, arg.arg, Val(p, t))
    tr.run_body(frame, tree.body)
    if not tr.builder.block.is_terminated:
        tr.kernel_return(0)
    with tr.builder.goto_block(tr.entry):
        tr.builder.branch(fn.blocks[1])
    tr.builder.position_at_end(mismatch)
    tr.builder.ret(ir.Constant(ir.IntType(32), 1))
    return module


# ----------------------------------------------------------------------------- our numba intrinsics


def _register_ours() -> None:
    """Handlers for the @intrinsic functions of `mathlib` and `helpers` (numba's lowering of each
    is LLVM code already; these emit the same instructions)."""
    from fuseflow.codegen import helpers, mathlib

    @intrinsic(mathlib._select)
    def _select(tr: Translator, args):
        cond, a, c = (tr.scalar(x) for x in args)
        if cond.t != BOOL:
            raise Unsupported("_select on a non-boolean condition")
        t = unify(a.t, c.t)
        return Val(tr.builder.select(cond.v, tr.cast(a, t).v, tr.cast(c, t).v), t)

    @intrinsic(mathlib._mul_add)
    def _mul_add(tr: Translator, args):
        a, b, c = (tr.scalar(x) for x in args)
        if not (a.t == b.t == c.t and _is_float(a.t)):
            raise Unsupported("_mul_add of mixed types")
        return tr.llvm_call("llvm.fmuladd", [a, b, c], a.t)

    @intrinsic(mathlib._to_bits)
    def _to_bits(tr: Translator, args):
        (x,) = (tr.scalar(a) for a in args)
        t = {F32: np.dtype(np.int32), F64: I64}.get(x.t)
        if t is None:
            raise Unsupported("_to_bits of a non-float")
        return Val(tr.builder.bitcast(x.v, ll_type(t)), t)

    @intrinsic(mathlib._from_bits)
    def _from_bits(tr: Translator, args):
        bits, like = (tr.scalar(a) for a in args)
        if not (_is_int(bits.t) and _is_float(like.t)):
            raise Unsupported("_from_bits of a non-integer")
        width, v = 8 * like.t.itemsize, bits.v
        if v.type.width > width:  # as numba's: truncate or sign-extend to the float's width
            v = tr.builder.trunc(v, ir.IntType(width))
        elif v.type.width < width:
            v = tr.builder.sext(v, ir.IntType(width))
        return Val(tr.builder.bitcast(v, ll_type(like.t)), like.t)

    @intrinsic(helpers.stream_from)
    def stream_from(tr: Translator, args):
        """The first index of ``[lo, hi)`` whose element of `out` is `STREAM_ALIGN`-aligned, or `hi`
        when `out` is smaller than `STREAM_MIN_BYTES`. A loop starting there is marked for
        `codegen.native`, which makes its vector stores non-temporal and aligned: true, as the
        loop's vector iterations start at that aligned element."""
        out, lo, hi = args[0], tr.scalar(args[1]), tr.scalar(args[2])
        if not isinstance(out, Array) or lo.t != U64 or hi.t != U64:
            raise Unsupported("stream_from(out, lo, hi) takes an array and two uintp bounds")
        if not STREAMS or out.t.dtype not in (F32, F64):
            return hi
        b, i64 = tr.builder, ir.IntType(64)
        size = ir.Constant(i64, out.t.dtype.itemsize)
        total = size
        for dim in out.shape:
            total = b.mul(total, dim)
        # the data is itemsize-aligned (the array prologue checks numpy's ALIGNED flag), so the
        # distance to the next aligned address is a whole number of elements
        address = b.add(b.ptrtoint(out.data, i64), b.mul(lo.v, size))
        start = b.add(lo.v, b.udiv(b.and_(b.neg(address), ir.Constant(i64, STREAM_ALIGN - 1)), size))
        start = b.select(b.icmp_unsigned("<", start, hi.v), start, hi.v)
        start = b.select(b.icmp_unsigned(">=", total, ir.Constant(i64, STREAM_MIN_BYTES)), start, hi.v)
        tr.stream_start = start
        return Val(start, U64)

    for fn, name in ((helpers._maxnum, "llvm.maxnum"), (helpers._minnum, "llvm.minnum")):
        def extreme(tr: Translator, args, name=name):
            a, b = (tr.scalar(x) for x in args)
            if not (a.t == b.t and _is_float(a.t)):
                raise Unsupported(f"{name} of mixed types")
            return tr.llvm_call(name, [a, b], a.t, flags=("nnan", "nsz"))

        intrinsic(fn)(extreme)


_register_ours()
