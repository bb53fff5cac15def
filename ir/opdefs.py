"""The op table: every primitive op of the IR, defined once.

An `OpDef` holds the op's name, category, attribute names, type rule, numpy
reference semantics and flags. The interpreter and constant folding read the
reference; the frontend and the verifier read the type rule; the codegen and
autodiff layers register their rules by the same names (see `CATEGORIES`).

Type rules take operand `TensorType`s (dims may be ``None``) and the attribute
dict, and return the result types. They raise ``ValueError`` for shape errors
and ``TypeError`` for dtype errors, naming the shapes/dtypes involved; the
frontend adds the user's op name and source line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fuseflow.ir import dtypes as dt
from fuseflow.ir.types import TensorType, format_shape

CATEGORIES = ("elementwise", "reduction", "contraction", "data-movement", "control", "opaque")


@dataclass(frozen=True)
class OpDef:
    """One primitive: its facts, type rule and numpy reference."""

    name: str
    category: str
    type_rule: Callable
    reference: Callable | None
    attrs: tuple = ()
    arity: int | None = None  # None = variadic
    commutative: bool = False
    stateful: bool = False  # random state or side effects: never merged or folded
    doc: str = ""
    extra: dict = field(default_factory=dict)


OPS: dict[str, OpDef] = {}


def define(name, category, type_rule, reference, *, attrs=(), arity=None, doc="", **flags) -> OpDef:
    assert category in CATEGORIES, category
    assert name not in OPS, f"op {name} defined twice"
    op = OpDef(name, category, type_rule, reference, tuple(attrs), arity, doc=doc, **flags)
    OPS[name] = op
    return op


def get(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown op '{name}'") from None


# ----------------------------------------------------------------------------- type helpers


def broadcast_shapes(*shapes):
    """NumPy broadcasting over shapes whose dims may be None; raises ValueError naming them."""
    if any(s is None for s in shapes):
        return None
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError("shapes " + " and ".join(format_shape(s) for s in shapes) + " are not broadcastable")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def _same_dtype(types, opname):
    first = types[0].dtype
    for t in types[1:]:
        if t.dtype != first:
            raise TypeError(f"{opname} needs operands of one dtype, got " + " and ".join(x.dtype.name for x in types))
    return first


def _check_dtype(t, allowed, opname, what="operand"):
    if t.dtype not in allowed:
        names = ", ".join(d.name for d in allowed)
        raise TypeError(f"{opname} {what} must be one of [{names}], got {t.dtype.name}")


def _norm_axis(axis, rank, opname):
    if rank is None:
        return axis
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"{opname}: axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


# ----------------------------------------------------------------------------- elementwise

FLOAT_ONLY = dt.FLOATS
SIGNED = (dt.int8, dt.int16, dt.int32, dt.int64) + dt.FLOATS
NUMERIC = dt.NUMERIC


def _unary_rule(allowed, out=None):
    def rule(types, attrs, name):
        (x,) = types
        _check_dtype(x, allowed, name)
        return (TensorType(out or x.dtype, x.shape),)

    return rule


def _binary_rule(allowed, out=None):
    def rule(types, attrs, name):
        dtype = _same_dtype(types, name)
        _check_dtype(types[0], allowed, name)
        shape = broadcast_shapes(types[0].shape, types[1].shape)
        return (TensorType(out or dtype, shape),)

    return rule


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


def _rsqrt(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1 / np.sqrt(x)).astype(x.dtype)


def _reciprocal(x):
    with np.errstate(divide="ignore"):
        if x.dtype.kind in "iu":
            return np.where(x == 0, 0, 1 // np.where(x == 0, 1, x)).astype(x.dtype)
        return (1 / x).astype(x.dtype)


def _int_pow(a, b):
    # Integer power with C semantics for negative exponents: 1, -1 or 0 (numpy raises instead).
    neg = b < 0
    safe = np.where(neg, 0, b)
    with np.errstate(over="ignore"):
        r = np.power(a, safe)
    r = np.where(neg & (a == 1), 1, r)
    r = np.where(neg & (a == -1), np.where(safe % 2 == 0, 1, -1) * np.where(b % 2 == 0, 1, -1), r)
    r = np.where(neg & (np.abs(a) != 1), 0, r)
    return r.astype(a.dtype)


def _pow(a, b):
    if a.dtype.kind in "iu":
        return _int_pow(a, b)
    with np.errstate(all="ignore"):
        return np.power(a, b)


def _errs(fn):
    def ref(*args):
        with np.errstate(all="ignore"):
            out = fn(*args)
        return np.asarray(out).astype(args[0].dtype, copy=False)

    return ref


def _divide(a, b):
    with np.errstate(all="ignore"):
        return np.true_divide(a, b).astype(a.dtype)


def _int_safe(fn):
    # Integer division by zero gives 0 (as the kernels do); floats follow IEEE.
    def ref(a, b):
        with np.errstate(all="ignore"):
            if a.dtype.kind in "iu":
                zero = b == 0
                return np.where(zero, 0, fn(a, np.where(zero, 1, b))).astype(a.dtype)
            return np.asarray(fn(a, b)).astype(a.dtype)

    return ref


_UNARY = {
    # name: (allowed dtypes, numpy reference)
    "neg": (SIGNED, np.negative),
    "abs": (SIGNED, np.abs),
    "sign": (SIGNED, np.sign),
    "reciprocal": (SIGNED, _reciprocal),
    "sqrt": (FLOAT_ONLY, _errs(np.sqrt)),
    "rsqrt": (FLOAT_ONLY, _rsqrt),
    "exp": (FLOAT_ONLY, _errs(np.exp)),
    "log": (FLOAT_ONLY, _errs(np.log)),
    "log1p": (FLOAT_ONLY, _errs(np.log1p)),
    "tanh": (FLOAT_ONLY, np.tanh),
    "sigmoid": (FLOAT_ONLY, _sigmoid),
    "sin": (FLOAT_ONLY, _errs(np.sin)),
    "cos": (FLOAT_ONLY, _errs(np.cos)),
    "floor": (FLOAT_ONLY, np.floor),
    "ceil": (FLOAT_ONLY, np.ceil),
    "round": (NUMERIC, np.round),
}
for _name, (_allowed, _ref) in _UNARY.items():
    define(_name, "elementwise", _unary_rule(_allowed), _ref, arity=1,
           doc=f"Elementwise {_name}, same dtype and shape as the operand.")

define("logical_not", "elementwise", _unary_rule((dt.bool_,)), np.logical_not, arity=1,
       doc="Elementwise boolean not.")

_BINARY = {
    "add": (NUMERIC, _errs(np.add), True),
    "sub": (NUMERIC, _errs(np.subtract), False),
    "mul": (NUMERIC, _errs(np.multiply), True),
    "div": (FLOAT_ONLY, _divide, False),
    "floor_div": (NUMERIC, _int_safe(np.floor_divide), False),
    "floor_mod": (NUMERIC, _int_safe(np.mod), False),
    "pow": (NUMERIC, _pow, False),
    "maximum": (NUMERIC, np.maximum, True),
    "minimum": (NUMERIC, np.minimum, True),
}
for _name, (_allowed, _ref, _comm) in _BINARY.items():
    define(_name, "elementwise", _binary_rule(_allowed), _ref, arity=2, commutative=_comm,
           doc=f"Elementwise {_name} with broadcasting; operands share one dtype.")

_COMPARE = {
    "equal": (np.equal, True), "not_equal": (np.not_equal, True),
    "less": (np.less, False), "less_equal": (np.less_equal, False),
    "greater": (np.greater, False), "greater_equal": (np.greater_equal, False),
}
for _name, (_ref, _comm) in _COMPARE.items():
    allowed = NUMERIC + (dt.bool_,) if _comm else NUMERIC
    define(_name, "elementwise", _binary_rule(allowed, out=dt.bool_), _ref, arity=2, commutative=_comm,
           doc=f"Elementwise {_name} with broadcasting; bool result.")

for _name, _ref in {"logical_and": np.logical_and, "logical_or": np.logical_or}.items():
    define(_name, "elementwise", _binary_rule((dt.bool_,)), _ref, arity=2, commutative=True,
           doc=f"Elementwise {_name} of bools with broadcasting.")


def _select_rule(types, attrs, name):
    cond, a, b = types
    _check_dtype(cond, (dt.bool_,), name, "condition")
    dtype = _same_dtype((a, b), name)
    return (TensorType(dtype, broadcast_shapes(cond.shape, a.shape, b.shape)),)


define("select", "elementwise", _select_rule, lambda c, a, b: np.where(c, a, b).astype(a.dtype), arity=3,
       doc="``select(c, a, b)``: a where c is true else b, all three broadcast.")


def _cast_rule(types, attrs, name):
    (x,) = types
    to = dt.as_dtype(attrs["dtype"])
    if x.dtype.is_string != to.is_string:
        raise TypeError(f"cast from {x.dtype.name} to {to.name} is not supported")
    return (TensorType(to, x.shape),)


def _cast_ref(x, dtype):
    to = dt.as_dtype(dtype).np
    with np.errstate(invalid="ignore", over="ignore"):
        if x.dtype.kind == "f" and to.kind in "iu":
            x = np.trunc(x)
        return x.astype(to)


define("cast", "elementwise", _cast_rule, lambda x, dtype: _cast_ref(x, dtype), attrs=("dtype",), arity=1,
       doc="Elementwise conversion to ``dtype``; floats truncate toward zero when cast to ints.")

# ----------------------------------------------------------------------------- reductions


def _reduce_shape(shape, axes, keepdims, name):
    if shape is None:
        return None
    axes = {_norm_axis(a, len(shape), name) for a in axes}
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def normalized_axes(op) -> tuple:
    """A reduction op's ``axes``, sorted and non-negative."""
    rank = len(op.operands[0].type.shape)
    return tuple(sorted({a % rank for a in op.attrs["axes"]})) if rank else ()


def _reduce_rule(allowed):
    def rule(types, attrs, name):
        (x,) = types
        _check_dtype(x, allowed, name)
        return (TensorType(x.dtype, _reduce_shape(x.shape, attrs["axes"], attrs["keepdims"], name)),)

    return rule


def _acc_dtype(dtype):
    return np.float64 if dtype.kind == "f" else dtype


def _np_axes(x, axes) -> tuple:
    # The type rule lets a rank-0 operand name axis 0: reducing a scalar leaves it as it is.
    return tuple(axes) if x.ndim else ()


def _reduce_ref(fn):
    def ref(x, axes, keepdims):
        with np.errstate(all="ignore"):  # the cast back may overflow (float16 sums): inf, as the kernels give
            out = fn(x.astype(_acc_dtype(x.dtype), copy=False), axis=_np_axes(x, axes), keepdims=keepdims)
            return np.asarray(out).astype(x.dtype)

    return ref


def _mean_ref(x, axes, keepdims):
    if x.dtype.kind == "f":
        return _reduce_ref(np.mean)(x, axes, keepdims)
    axes = _np_axes(x, axes)
    n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    s = np.sum(x.astype(np.int64), axis=axes, keepdims=keepdims)
    q = np.where(s < 0, -((-s) // max(n, 1)), s // max(n, 1))  # integer mean truncates toward zero
    return np.asarray(q).astype(x.dtype)


def _minmax_ref(fn, empty):
    def ref(x, axes, keepdims):
        if x.size == 0:
            shape = _reduce_shape(x.shape, axes, keepdims, "reduce")
            return np.full(shape, empty(x.dtype), x.dtype)
        return np.asarray(fn(x, axis=_np_axes(x, axes), keepdims=keepdims)).astype(x.dtype)

    return ref


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype):
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


_REDUCE_DOC = "over ``axes`` (normalised, sorted); ``keepdims`` keeps them as size 1."
define("reduce_sum", "reduction", _reduce_rule(NUMERIC), _reduce_ref(np.sum), attrs=("axes", "keepdims"), arity=1,
       doc="Sum " + _REDUCE_DOC, extra={"identity": 0})
define("reduce_prod", "reduction", _reduce_rule(NUMERIC), _reduce_ref(np.prod), attrs=("axes", "keepdims"), arity=1,
       doc="Product " + _REDUCE_DOC, extra={"identity": 1})
define("reduce_mean", "reduction", _reduce_rule(NUMERIC), _mean_ref, attrs=("axes", "keepdims"), arity=1,
       doc="Mean " + _REDUCE_DOC + " Integer means truncate toward zero.", extra={"identity": 0})
define("reduce_max", "reduction", _reduce_rule(NUMERIC), _minmax_ref(np.max, _lowest), attrs=("axes", "keepdims"),
       arity=1, doc="Maximum " + _REDUCE_DOC + " NaN propagates.", extra={"identity": "lowest"})
define("reduce_min", "reduction", _reduce_rule(NUMERIC), _minmax_ref(np.min, _highest), attrs=("axes", "keepdims"),
       arity=1, doc="Minimum " + _REDUCE_DOC + " NaN propagates.", extra={"identity": "highest"})


def _arg_rule(types, attrs, name):
    (x,) = types
    _check_dtype(x, NUMERIC, name)
    out = dt.as_dtype(attrs["output_type"])
    _check_dtype(TensorType(out, ()), (dt.int32, dt.int64), name, "output_type")
    shape = _reduce_shape(x.shape, (attrs["axis"],), False, name)
    if x.shape is not None and x.shape[_norm_axis(attrs["axis"], len(x.shape), name)] == 0:
        raise ValueError(f"{name} over an empty axis of shape {format_shape(x.shape)}")
    return (TensorType(out, shape),)


define("argmax", "reduction", _arg_rule,
       lambda x, axis, output_type: np.argmax(x, axis=axis).astype(dt.as_dtype(output_type).np),
       attrs=("axis", "output_type"), arity=1, doc="Index of the first maximum along ``axis`` (NaN counts as max).")
define("argmin", "reduction", _arg_rule,
       lambda x, axis, output_type: np.argmin(x, axis=axis).astype(dt.as_dtype(output_type).np),
       attrs=("axis", "output_type"), arity=1, doc="Index of the first minimum along ``axis`` (NaN counts as min).")

# ----------------------------------------------------------------------------- contraction


def _matmul_rule(types, attrs, name):
    a, b = types
    dtype = _same_dtype(types, name)
    _check_dtype(a, NUMERIC, name)
    if a.shape is None or b.shape is None:
        return (TensorType(dtype, None),)
    if a.rank < 2 or b.rank < 2:
        raise ValueError(f"{name} needs operands of rank >= 2, got shapes {format_shape(a.shape)} "
                         f"and {format_shape(b.shape)}")
    m, ka = a.shape[-2:][::-1] if attrs["transpose_a"] else a.shape[-2:]
    kb, n = b.shape[-2:][::-1] if attrs["transpose_b"] else b.shape[-2:]
    if ka is not None and kb is not None and ka != kb:
        raise ValueError(f"{name}: inner dimensions differ: shapes {format_shape(a.shape)} and "
                         f"{format_shape(b.shape)} (transpose_a={attrs['transpose_a']}, "
                         f"transpose_b={attrs['transpose_b']}) give {ka} != {kb}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return (TensorType(dtype, tuple(batch) + (m, n)),)


def _matmul_ref(a, b, transpose_a, transpose_b):
    if transpose_a:
        a = np.swapaxes(a, -1, -2)
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    if a.dtype.kind == "f":
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)
    return np.matmul(a, b).astype(a.dtype)


define("matmul", "contraction", _matmul_rule, _matmul_ref, attrs=("transpose_a", "transpose_b"), arity=2,
       doc="Batched matrix product over the last two dims; batch dims broadcast.")


def _matmul_add_rule(types, attrs, name):
    a, b, c = types
    (product,) = _matmul_rule((a, b), attrs, name)
    _check_dtype(a, FLOAT_ONLY, name)
    if a.rank != 2 or b.rank != 2 or c.dtype != product.dtype or c.shape != product.shape:
        raise ValueError(f"{name} takes two matrices and an addend of their product's type "
                         f"{product}, got {a}, {b} and {c}")
    return (product,)


def _matmul_add_ref(a, b, c, transpose_a, transpose_b, alpha):
    product = _matmul_ref(a.astype(np.float64), b.astype(np.float64), transpose_a, transpose_b)
    return (alpha * product + c).astype(c.dtype)


define("matmul_add", "contraction", _matmul_add_rule, _matmul_add_ref,
       attrs=("transpose_a", "transpose_b", "alpha"), arity=3,
       doc="``alpha * matmul(a, b) + c`` for float matrices: one BLAS gemm that accumulates into c "
           "(the `gemm` pass makes it from a product and the update that adds it).")
