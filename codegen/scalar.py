"""Scalar expressions of the elementwise ops, one emitter per op name.

An emitter takes the operands' expression strings, their dtypes and the op's
attributes, and returns a Python expression string. `emit` wraps it so the value
has the result's *register type*: the dtype itself, except float16, which lives
in float32 registers holding exactly representable half values (each op's result
is rounded to half, as numpy rounds after every float16 op). Helper calls go
through the module alias ``_h`` (`fuseflow.codegen.helpers` on the CPU; a CUDA
backend binds ``_h`` to device functions of the same names). Float constants are
always typed (``np.float32(1.0)``) so float32 arithmetic stays float32.
"""

from __future__ import annotations

from collections.abc import Callable

from fuseflow.ir import dtypes as dt
from fuseflow.ir.dtypes import DType

Emitter = Callable[[list, list, dict], str]
EMITTERS: dict[str, Emitter] = {}


def register_type(dtype: DType) -> str:
    """The numpy scalar type name that holds values of `dtype` in a kernel."""
    return "float32" if dtype is dt.float16 else dtype.np.name


def typed_const(value, dtype: DType) -> str:
    """A literal of `dtype`'s register type, e.g. ``np.float32(0.5)``."""
    if dtype.is_bool:
        return repr(bool(value))
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        text = text.replace("inf", "np.inf").replace("nan", "np.nan")
    return f"np.{register_type(dtype)}({text})"


def load(ref: str, dtype: DType) -> str:
    """The register value of array element `ref` (float16 arrays hold uint16 bits)."""
    return f"_h.f16_to_f32({ref})" if dtype is dt.float16 else ref


def store(value: str, dtype: DType) -> str:
    """What to assign into an array element of `dtype` from a register value (float16: its bits)."""
    if dtype is dt.float16:
        return f"_h.f32_to_f16({value})"
    return value if dtype.is_bool else f"np.{dtype.np.name}({value})"


def to_register(expr: str, dtype: DType) -> str:
    """`expr` (any numeric type) converted to `dtype`'s register type; ints wrap, halves round."""
    if dtype.is_bool:
        return expr
    if dtype is dt.float16:
        return f"_h.f16_round({expr})"
    return f"np.{dtype.np.name}({expr})"


def emit(name: str, args: list, dtypes: list, attrs: dict, result: DType, known=None) -> str:
    """The expression of elementwise op `name`, in `result`'s register type.

    `known` holds, per operand, its value when it is a scalar constant (else None).
    """
    try:
        emitter = EMITTERS[name]
    except KeyError:
        raise NotImplementedError(f"no scalar emitter for op '{name}'") from None
    if name in _WITH_KNOWN:
        expr = emitter(args, dtypes, attrs, known or [None] * len(args))
    else:
        expr = emitter(args, dtypes, attrs)
    if name in _EXACT and result is dt.float16:
        return expr  # already an exact half value in float32
    return to_register(expr, result)


# Ops whose float16 result needs no rounding: they only move, negate or compare halves.
_EXACT = {"neg", "abs", "sign", "floor", "ceil", "round", "maximum", "minimum", "select", "broadcast_to",
          "stop_gradient"}


def _register(*names):
    def deco(fn):
        for n in names:
            EMITTERS[n] = fn
        return fn

    return deco


def _fsuffix(dtype: DType) -> str:
    return "f64" if dtype is dt.float64 else "f32"


def _i64(x: str) -> str:
    return f"np.int64({x})"


# ----------------------------------------------------------------------------- unary


def _ufunc(fn):
    return lambda a, t, attrs: f"np.{fn}({a[0]})"


for _name in ("sqrt", "floor", "ceil"):  # LLVM intrinsics: they vectorise as they are
    EMITTERS[_name] = _ufunc(_name)


def _mathlib(fn):
    # Our vectorisable implementations (fuseflow.codegen.mathlib, bound as ``_m``), not libm calls.
    return lambda a, t, attrs: f"_m.{fn}_{_fsuffix(t[0])}({a[0]})"


for _name in ("exp", "log", "log1p", "tanh", "sigmoid", "sin", "cos"):
    EMITTERS[_name] = _mathlib(_name)

EMITTERS["neg"] = lambda a, t, attrs: f"(-{a[0]})"
EMITTERS["abs"] = lambda a, t, attrs: f"abs({a[0]})"
EMITTERS["logical_not"] = lambda a, t, attrs: f"(not {a[0]})"
EMITTERS["broadcast_to"] = lambda a, t, attrs: a[0]  # the loop's index arithmetic broadcasts
EMITTERS["stop_gradient"] = lambda a, t, attrs: a[0]
EMITTERS["rsqrt"] = lambda a, t, attrs: f"_h.rsqrt_{_fsuffix(t[0])}({a[0]})"


@_register("sign")
def _sign(a, t, attrs):
    if t[0].is_integer:
        return f"_h.sign_int({_i64(a[0])})"
    return f"_h.sign_{_fsuffix(t[0])}({a[0]})"


@_register("reciprocal")
def _reciprocal(a, t, attrs):
    if t[0].is_integer:
        return f"_h.floor_div_int(np.int64(1), {_i64(a[0])})"
    return f"({typed_const(1.0, t[0])} / {a[0]})"


@_register("round")
def _round(a, t, attrs):
    return f"np.rint({a[0]})" if t[0].is_floating else a[0]  # rint: half to even


# ----------------------------------------------------------------------------- binary


def _infix(symbol):
    return lambda a, t, attrs: f"({a[0]} {symbol} {a[1]})"


for _name, _sym in {"add": "+", "sub": "-", "mul": "*", "div": "/", "equal": "==", "not_equal": "!=",
                    "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=",
                    "logical_and": "&", "logical_or": "|"}.items():
    EMITTERS[_name] = _infix(_sym)

EMITTERS["maximum"] = lambda a, t, attrs: f"_h.maximum({a[0]}, {a[1]})"
EMITTERS["minimum"] = lambda a, t, attrs: f"_h.minimum({a[0]}, {a[1]})"


def _int_or_float(helper):
    def emitter(a, t, attrs):
        if t[0].is_integer:
            return f"_h.{helper}_int({_i64(a[0])}, {_i64(a[1])})"
        return f"_h.{helper}_{_fsuffix(t[0])}({a[0]}, {a[1]})"

    return emitter


EMITTERS["floor_div"] = _int_or_float("floor_div")
EMITTERS["floor_mod"] = _int_or_float("floor_mod")


@_register("pow")
def _pow(a, t, attrs, known):
    if t[0].is_integer:
        return f"_h.int_pow({_i64(a[0])}, {_i64(a[1])})"
    n = known[1]
    if n is not None and float(n).is_integer() and 1 <= abs(n) <= 4:
        # x**n for a small integer constant n: repeated products (within 2 ulp, vectorisable)
        product = "(" + " * ".join([a[0]] * int(abs(n))) + ")"
        return product if n > 0 else f"({typed_const(1.0, t[0])} / {product})"
    return f"np.power({a[0]}, {a[1]})"


_WITH_KNOWN = {"pow"}


@_register("select")
def _select(a, t, attrs):
    return f"({a[1]} if {a[0]} else {a[2]})"


# ----------------------------------------------------------------------------- cast


@_register("cast")
def _cast(a, t, attrs):
    return cast_expr(a[0], t[0], dt.as_dtype(attrs["dtype"]))


def cast_expr(x: str, src: DType, dst: DType) -> str:
    """`x` (a register value of `src`) as a value `to_register(.., dst)` turns into `dst`.

    Floats truncate toward zero into ints; NaN and out-of-range values give what numpy
    gives on x86 (through int32 for targets of 32 bits or less, else int64's minimum).
    """
    if dst.is_bool:
        return x if src.is_bool else f"({x} != 0)"
    if src.is_bool:
        return f"np.{'float64' if dst.is_floating else 'int64'}({x})"
    if src.is_floating and dst.is_integer:
        return f"_h.f2i64({x})" if dst is dt.int64 else f"_h.f2i32({x})"
    if src.is_integer and dst is dt.float16:
        return f"np.float64({x})"  # one rounding, float64 -> half (exact for |x| < 2**53)
    return x
