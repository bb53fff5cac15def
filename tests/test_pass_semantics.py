"""Differential tests over random programs: every pass keeps the interpreter's results, and the
compiled default pipeline computes what the interpreter computes on the unoptimised module.

A program is a random DAG built with `Builder` over one float dtype (float32 or float64):
elementwise unary and binary ops (logarithms and roots of ``abs``, so only IEEE special values
appear, never domain errors), broadcasting between the shapes of `SHAPES`, constants (with the
values the simplifier's identities look for), comparisons feeding ``select`` or ``cast``, casts
between the float dtypes, explicit ``broadcast_to``, reductions over random axes with and without
``keepdims`` and the ops that consume them, and repeats of earlier ops (with swapped operands when
commutative) for CSE. Inputs mix NaN, +-Inf, +-0, huge and tiny values with ordinary ones. Two
behaviours that are not defined alike everywhere stay out of reach: the zero sign of max/min of
-0.0 and +0.0 (later ops read ``max + 0.0``) and numpy's scalar exponent 0.5 (computed as sqrt).

Passes are checked under the interpreter exactly (zero signs included). Compiled kernels may sum
in another order than numpy and may differ from numpy's transcendental functions by a few ulp;
where the reference itself moves by more than the tolerance when its sums are reordered and its
inexact ops perturbed by a few ulp (cancellation, overflow at the edge), an element is
ill-conditioned and `conditioned` leaves it out of the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from irtest import check_ir, close_mask, same_values

from fuseflow.ir import dtypes as dt
from fuseflow.ir import opdefs
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Module
from fuseflow.ir.interp import run as interp_run
from fuseflow.ir.printer import print_module
from fuseflow.ir.types import TensorType
from fuseflow.passes.manager import DEFAULT_PIPELINE, PASSES, PassManager
from fuseflow.runtime.executable import Executable

SHAPES = ((4, 5), (5,), (4, 1), (1, 5), (), (4,))
UNARY = ("neg", "abs", "exp", "tanh", "sigmoid", "sin", "cos", "floor", "ceil", "sign", "reciprocal", "round")
ABS_GUARDED = ("log", "sqrt", "log1p", "rsqrt")  # applied to abs(x): no domain errors, still 0 and inf
BINARY = ("add", "sub", "mul", "div", "maximum", "minimum", "pow")
COMPARE = ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal")
REDUCE = ("reduce_sum", "reduce_max", "reduce_min", "reduce_mean")
# Scalars the simplifier looks for (1, +-0, 2) besides ordinary and special ones.
CONSTANTS = (1.0, 0.0, -0.0, 2.0, 0.5, -1.5, 3.0, np.inf, -np.inf, np.nan)
POW_EXPONENTS = (2.0, 3.0, 1.0, 0.0, -1.0, -2.0, 1.5, -1.5, 4.0, np.inf, np.nan)

KINDS = ("unary", "unary", "guarded", "binary", "binary", "binary", "constant", "select", "cast", "reduce",
         "reduce", "broadcast", "repeat")


@dataclass(frozen=True)
class Program:
    """Arguments (dtype name, shape), then steps ``(op name, operand indices, attrs)`` or
    ``("constant", (), {"value": array})``; value i < n_args is argument i, then step i - n_args."""

    args: tuple
    steps: tuple
    outputs: tuple

    def module(self) -> Module:
        b = Builder([TensorType(dt.as_dtype(d), s) for d, s in self.args])
        values = list(b.args)
        for name, operands, attrs in self.steps:
            if name == "constant":
                values.append(b.constant(attrs["value"]))
            else:
                values.append(b.op(name, *[values[i] for i in operands], **attrs))
        return Module([b.finish([values[i] for i in self.outputs])])


def _broadcast(*shapes):
    try:
        return opdefs.broadcast_shapes(*shapes)
    except ValueError:
        return None


@st.composite
def programs(draw, max_steps: int = 12) -> Program:
    dtype = draw(st.sampled_from(("float32", "float64")))
    args = tuple((dtype, draw(st.sampled_from(SHAPES))) for _ in range(draw(st.integers(1, 3))))
    types = [TensorType(dt.as_dtype(d), s) for d, s in args]
    steps: list = []

    def add(name, operands, **attrs):
        t = opdefs.get(name).type_rule(tuple(types[i] for i in operands), attrs, name)
        steps.append((name, tuple(operands), attrs))
        types.append(t[0])
        return len(types) - 1

    hidden: set = set()

    def pick(pred):
        """A value satisfying `pred`: the latest one half of the time (deep chains), else any."""
        idx = [i for i, t in enumerate(types) if pred(t) and i not in hidden]
        if not idx:
            return None
        return idx[-1] if draw(st.booleans()) else draw(st.sampled_from(idx))

    def floats():
        return pick(lambda t: t.dtype.is_floating)

    def partner(i, kind=None):
        """A value that broadcasts with `i`, of `i`'s dtype (or `kind`), possibly `i` itself."""
        want = types[i].dtype if kind is None else kind
        return pick(lambda t: t.dtype == want and _broadcast(t.shape, types[i].shape) is not None)

    def constant(dtype, like=None, values=CONSTANTS):
        shapes = [s for s in ((), (), (5,), (4,), (4, 1)) if like is None or _broadcast(s, types[like].shape) is not None]
        shape = draw(st.sampled_from(shapes))
        vals = draw(st.lists(st.sampled_from(values), min_size=1, max_size=1 if not shape else int(np.prod(shape))))
        value = np.resize(np.array(vals, dtype.np), shape)
        steps.append(("constant", (), {"value": value}))
        types.append(TensorType(dtype, shape))
        return len(types) - 1

    def binary(name, operands, **attrs):
        r = add(name, operands, **attrs)
        if name in ("maximum", "minimum"):
            # The sign of max(-0.0, +0.0) depends on operand order (numpy: the second's, the kernels:
            # the first's; IEEE 754-2019: +0.0), so later ops read max + (+0.0), whose zeros are +0.0.
            steps.append(("constant", (), {"value": np.zeros((), types[r].dtype.np)}))
            types.append(TensorType(types[r].dtype, ()))
            hidden.update((r, len(types) - 1))
            r = add("add", [r, len(types) - 1])
        return r

    def compare():
        a = floats()
        return add(draw(st.sampled_from(COMPARE)), [a, partner(a)])

    for _ in range(draw(st.integers(2, max_steps))):
        kind = draw(st.sampled_from(KINDS))
        if kind == "unary":
            add(draw(st.sampled_from(UNARY)), [floats()])
        elif kind == "guarded":
            add(draw(st.sampled_from(ABS_GUARDED)), [add("abs", [floats()])])
        elif kind == "binary":
            a, name = floats(), draw(st.sampled_from(BINARY))
            if name == "pow":
                # numpy's power computes a scalar exponent of 0.5 as sqrt (pow(-inf, 0.5) is NaN there,
                # +inf in C and the kernels; see test_compiled_pow_of_minus_infinity_to_one_half), so
                # scalar exponents are constants other than 0.5
                b = None if draw(st.booleans()) else pick(
                    lambda t, at=types[a]: t.dtype == at.dtype and t.shape != () and _broadcast(t.shape, at.shape))
                binary(name, [a, constant(types[a].dtype, like=a, values=POW_EXPONENTS) if b is None else b])
            elif draw(st.booleans()):
                b = constant(types[a].dtype, like=a)
                binary(name, [b, a] if draw(st.booleans()) else [a, b])
            else:
                binary(name, [a, partner(a)])
        elif kind == "constant":
            constant(dt.as_dtype(dtype))
        elif kind == "select":
            cond = pick(lambda t: t.dtype.is_bool)
            cond = compare() if cond is None or draw(st.booleans()) else cond
            cs = types[cond].shape
            a = pick(lambda t, cs=cs: t.dtype.is_floating and _broadcast(t.shape, cs) is not None)
            if a is None:
                continue
            b = pick(lambda t, at=types[a], cs=cs: t.dtype == at.dtype and _broadcast(t.shape, at.shape, cs) is not None)
            add("select", [cond, a, b])
        elif kind == "cast":
            if draw(st.booleans()):
                add("cast", [compare()], dtype=dt.as_dtype(dtype))
            else:
                a = floats()
                add("cast", [a], dtype=dt.float64 if types[a].dtype is dt.float32 else dt.float32)
        elif kind == "reduce":
            a = floats()
            rank = len(types[a].shape)
            axes = draw(st.lists(st.integers(0, max(rank - 1, 0)), unique=True, max_size=rank)) if rank else []
            add(draw(st.sampled_from(REDUCE)), [a], axes=tuple(sorted(axes)), keepdims=draw(st.booleans()))
        elif kind == "broadcast":
            a = pick(lambda t: t.shape != (4, 5) and _broadcast(t.shape, (4, 5)) == (4, 5))
            if a is not None:
                add("broadcast_to", [a], shape=(4, 5))
        elif kind == "repeat":
            ops = [s for s in steps if s[0] != "constant"]
            if ops:
                name, operands, attrs = draw(st.sampled_from(ops))
                if opdefs.get(name).commutative:
                    operands = operands[::-1]
                binary(name, list(operands), **attrs)
    visible = [i for i in range(len(types)) if i not in hidden]
    last = visible[-1]
    others = draw(st.lists(st.sampled_from(visible), max_size=2))
    return Program(args, tuple(steps), tuple(dict.fromkeys([last] + others)))


# ----------------------------------------------------------------------------- inputs


def special_values(dtype: np.dtype) -> list:
    info = np.finfo(dtype)
    huge = 1e30 if dtype == np.float32 else 1e200
    return [0.0, -0.0, np.inf, -np.inf, np.nan, float(info.max), -float(info.max), float(info.tiny),
            -float(info.tiny), float(info.smallest_subnormal), huge, -huge, 1 / huge, -1 / huge, 1.0, -1.0]


def arrays_for(program: Program):
    def one(dtype, shape):
        dtype = np.dtype(dtype)
        ordinary = st.floats(-50, 50, width=dtype.itemsize * 8)
        elements = st.one_of(ordinary, ordinary, st.sampled_from(special_values(dtype)))
        size = int(np.prod(shape))
        return st.lists(elements, min_size=size, max_size=size).map(
            lambda xs: np.array(xs, dtype=dtype).reshape(shape))

    return st.tuples(*[one(d, s) for d, s in program.args])


@st.composite
def cases(draw, max_steps: int = 12):
    program = draw(programs(max_steps))
    return program, draw(arrays_for(program))


def reference(module: Module, arrays) -> tuple:
    with np.errstate(all="ignore"):
        return interp_run(module, *arrays)


def budget(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ----------------------------------------------------------------------------- (a) each pass


@pytest.mark.parametrize("name", ["simplify", "fold", "cse", "dce", "fuse"])
@budget(300)
@given(case=cases())
def test_pass_preserves_semantics(name, case):
    program, arrays = case
    module = program.module()
    check_ir(module)
    after = check_ir(PASSES[name](module))
    try:
        same_values(reference(after, arrays), reference(module, arrays), zero_sign=True)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- before:\n{print_module(module)}\n--- after {name}:\n"
                             f"{print_module(after)}") from None


# ----------------------------------------------------------------------------- (b) compiled pipeline

TOLERANCE = {np.dtype(np.float32): (2e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-300)}
# Ops the kernels may compute a few ulp away from numpy (their own vectorised functions or libm).
INEXACT = {"exp", "log", "log1p", "tanh", "sigmoid", "sin", "cos", "rsqrt", "pow"}
SUMS = {"reduce_sum", "reduce_mean"}
PERTURB_ULPS = 4


def test_pipeline_is_verified_between_passes():
    assert DEFAULT_PIPELINE.split(",") == PassManager(DEFAULT_PIPELINE, verify=True).names


def _fsum(row: np.ndarray) -> float:
    """The correctly rounded sum of a float64 row (numpy's where it has infinities or overflows)."""
    import math

    try:
        return math.fsum(row) if np.isfinite(row).all() else float(np.sum(row))
    except OverflowError:
        return float(np.sum(row))


def _sum(x: np.ndarray, axes, keepdims: bool, order: str, mean: bool) -> np.ndarray:
    """reduce_sum/reduce_mean of a float `x` accumulated in float64 in another `order`: ``reversed``,
    ``ascending``, ``descending`` (one element after the other) or ``exact`` (math.fsum, correctly
    rounded)."""
    axes = tuple(axes) if x.ndim else ()
    moved = np.moveaxis(x.astype(np.float64), axes, tuple(range(x.ndim - len(axes), x.ndim)))
    rows = moved.reshape(-1, int(np.prod([x.shape[a] for a in axes], dtype=np.int64)))
    with np.errstate(all="ignore"):
        if order == "exact":
            sums = np.array([_fsum(r) for r in rows])
        else:  # one element after the other (overflow and cancellation happen early or late)
            ordered = {"reversed": rows[:, ::-1], "ascending": np.sort(rows, axis=1),
                       "descending": -np.sort(-rows, axis=1)}[order]
            sums = np.add.accumulate(ordered, axis=1)[:, -1] if ordered.shape[1] else np.zeros(len(rows))
        if mean:
            sums = sums / rows.shape[1]
    out_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keepdims else \
        tuple(d for i, d in enumerate(x.shape) if i not in axes)
    with np.errstate(all="ignore"):
        return sums.reshape(out_shape).astype(x.dtype)


def evaluate(module: Module, arrays, order: str = "numpy", perturb=None) -> tuple:
    """The interpreter's semantics with float sums in another `order` and inexact ops' results
    scaled by ``perturb(shape)`` (relative, in ulps of their dtype)."""
    env = {a: np.asarray(x) for a, x in zip(module.main.args, arrays)}
    for op in module.main.ops[:-1]:
        inputs = [env[v] for v in op.operands]
        result = op.results[0]
        with np.errstate(all="ignore"):
            if op.name in SUMS and order != "numpy" and result.dtype.is_floating:
                out = _sum(inputs[0], op.attrs["axes"], op.attrs["keepdims"], order, op.name == "reduce_mean")
            else:
                out = opdefs.get(op.name).reference(*inputs, **op.attrs)
            out = np.asarray(out, dtype=result.dtype.np).reshape(result.shape)
            if perturb is not None and op.name in INEXACT:
                eps = np.finfo(out.dtype).eps
                out = (out * (1 + perturb(out.shape) * eps)).astype(out.dtype)
        env[result] = out
    return tuple(env[v] for v in module.main.results)


def conditioned(module: Module, arrays, want, rtol, atol) -> list:
    """Per result, the elements whose reference value stays within tolerance when sums run in other
    orders and inexact ops move by up to `PERTURB_ULPS` ulps: the ones a correct kernel must match."""
    rng = np.random.default_rng(0)
    variants = [
        evaluate(module, arrays, "reversed"),
        evaluate(module, arrays, "ascending"),
        evaluate(module, arrays, "descending"),
        evaluate(module, arrays, "exact"),
        evaluate(module, arrays, perturb=lambda shape: np.full(shape, PERTURB_ULPS)),
        evaluate(module, arrays, perturb=lambda shape: np.full(shape, -PERTURB_ULPS)),
        evaluate(module, arrays, "exact", perturb=lambda shape: rng.integers(-PERTURB_ULPS, PERTURB_ULPS + 1, shape)),
    ]
    return [np.logical_and.reduce([close_mask(v[i], w, rtol, atol) for v in variants])
            for i, w in enumerate(want)]


def types_of(module: Module) -> list:
    fn = module.main
    return [a.type for a in fn.args] + [r.type for op in fn.ops for r in op.results]


@budget(300)
@given(case=cases(max_steps=12))
def test_compiled_pipeline_matches_interpreter(case):
    program, arrays = case
    module = program.module()
    optimized = PassManager(DEFAULT_PIPELINE, verify=True).run(module)
    got = Executable(optimized.main).run(list(arrays))
    want = reference(module, arrays)
    # a float32 value anywhere (an argument, a cast) sets float32 tolerances for everything after it
    f32 = any(t.dtype is dt.float32 for t in types_of(module))
    rtol, atol = TOLERANCE[np.dtype(np.float32 if f32 else np.float64)]
    where = conditioned(module, arrays, want, rtol, atol)
    try:
        same_values([np.asarray(g) for g in got], want, rtol=rtol, atol=atol, where=where)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- program:\n{print_module(module)}\n--- optimised:\n"
                             f"{print_module(optimized)}") from None


def test_compiled_reduction_broadcast_back_to_the_full_domain():
    # Found by the test above: a fused result that spans the reduced axes without varying along them
    # was stored at index 0 of those axes only (the other rows stayed uninitialised).
    b = Builder([TensorType(dt.float32, (4, 5))])
    (x,) = b.args
    s = b.op("reduce_sum", x, axes=(0,), keepdims=True)
    n = b.op("neg", b.op("broadcast_to", s, shape=(4, 5)))
    module = Module([b.finish([n, b.op("add", n, b.op("exp", x))])])
    optimized = PassManager(DEFAULT_PIPELINE, verify=True).run(module)
    assert [op.name for op in optimized.main.ops[:-1]] == ["fused"]
    arg = np.arange(20, dtype=np.float32).reshape(4, 5) / 10
    for _ in range(3):  # uninitialised memory differs from run to run
        same_values(Executable(optimized.main).run([arg]), reference(module, [arg]), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [dt.float32, dt.float64])
def test_compiled_sign_of_negative_zero_is_positive_zero(dtype):
    # Found by the differential test: the kernels' sign(-0.0) was -0.0 (numpy: +0.0), so
    # 1 / sign(-0.0) was -inf instead of +inf.
    b = Builder([TensorType(dtype, (4,))])
    one = b.constant(np.ones((), dtype.np))
    module = Module([b.finish([b.op("div", one, b.op("sign", b.args[0]))])])
    arg = np.array([-0.0, 0.0, -2.0, np.nan], dtype.np)
    optimized = PassManager(DEFAULT_PIPELINE, verify=True).run(module)
    same_values(Executable(optimized.main).run([arg]), reference(module, [arg]))


@pytest.mark.parametrize("program", [
    # Found by the differential test: a keepdims and a squeezed reduction mixed in one select crashed
    # the kernel generator (IndexError) ...
    Program((("float32", (5,)), ("float32", ())),
            (("reduce_sum", (0,), {"axes": (0,), "keepdims": True}),
             ("reduce_sum", (0,), {"axes": (0,), "keepdims": False}),
             ("less", (1, 1), {}), ("select", (4, 2, 3), {})), (5,)),
    # ... and a squeezed reduction over trailing axes read an argument of its shape along the reduced axis.
    Program((("float32", (4, 5)), ("float32", (4,))),
            (("reduce_sum", (0,), {"axes": (1,), "keepdims": False}), ("add", (2, 1), {})), (3,)),
], ids=["keepdims-and-squeezed", "squeezed-plus-argument"])
def test_compiled_squeezed_reductions_with_their_consumers(program):
    module = program.module()
    arrays = [(np.arange(int(np.prod(s)), dtype=d) * 10).reshape(s) for d, s in program.args]
    optimized = PassManager(DEFAULT_PIPELINE, verify=True).run(module)
    same_values(Executable(optimized.main).run(arrays), reference(module, arrays))


@pytest.mark.xfail(strict=True, reason="ir/opdefs.py's pow reference is np.power, which computes a scalar "
                   "exponent of 0.5 as sqrt: pow(-inf, 0.5) is NaN (C, an array exponent and the kernels: +inf) "
                   "and pow(-0.0, 0.5) is -0.0 (C: +0.0)")
def test_compiled_pow_of_minus_infinity_to_one_half():
    b = Builder([TensorType(dt.float32, (3,))])
    y = b.op("pow", b.args[0], b.constant(np.float32(0.5)))
    module = Module([b.finish([b.op("reciprocal", y), y])])
    arg = np.array([-np.inf, -0.0, 4.0], np.float32)
    optimized = PassManager(DEFAULT_PIPELINE, verify=True).run(module)
    same_values(Executable(optimized.main).run([arg]), reference(module, [arg]), zero_sign=True)
