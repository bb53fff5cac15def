"""Elementwise math, comparisons, reductions, matmul and cast: the TF1 names over IR primitives."""

from __future__ import annotations

import builtins

import numpy as np

from fuseflow.frontend.core_ops import convert_to_tensor, make_op
from fuseflow.frontend.graph import NeedsShape, Tensor
from fuseflow.ir import dtypes as dt


def rank_of(v) -> int:
    """The rank of IR value `v`; during build-time inference an unknown rank stops the inference."""
    if v.type.shape is None:
        raise NeedsShape(v.type.dtype)
    return len(v.type.shape)


def _unary(tf_type, ir_name):
    def op(x, name=None):
        x = convert_to_tensor(x)
        return make_op(tf_type, [x], lambda b, v: b.op(ir_name, v), name=name)

    op.__name__ = ir_name
    op.__doc__ = f"Elementwise `{ir_name}` (TF op {tf_type})."
    return op


negative = neg = _unary("Neg", "neg")
abs = _unary("Abs", "abs")
sign = _unary("Sign", "sign")
reciprocal = _unary("Reciprocal", "reciprocal")
sqrt = _unary("Sqrt", "sqrt")
rsqrt = _unary("Rsqrt", "rsqrt")
exp = _unary("Exp", "exp")
log = _unary("Log", "log")
log1p = _unary("Log1p", "log1p")
tanh = _unary("Tanh", "tanh")
sigmoid = _unary("Sigmoid", "sigmoid")
sin = _unary("Sin", "sin")
cos = _unary("Cos", "cos")
floor = _unary("Floor", "floor")
ceil = _unary("Ceil", "ceil")
round = _unary("Round", "round")
logical_not = _unary("LogicalNot", "logical_not")


def square(x, name=None):
    """``x * x``."""
    x = convert_to_tensor(x)
    return make_op("Square", [x], lambda b, v: b.op("mul", v, v), name=name)


def binary_inputs(x, y):
    """Converts a pair of operands; a Python value takes the dtype of the tensor beside it (as TF does)."""
    x_is = isinstance(x, Tensor) or hasattr(x, "_as_graph_element")
    y_is = isinstance(y, Tensor) or hasattr(y, "_as_graph_element")
    if x_is or not y_is:
        x = convert_to_tensor(x)
        y = convert_to_tensor(y, preferred_dtype=x.dtype)
    else:
        y = convert_to_tensor(y)
        x = convert_to_tensor(x, preferred_dtype=y.dtype)
    if x.weak != y.weak:
        x, y = _adopt_weak(x, y)
    return x, y


def _adopt_weak(x, y):
    """A weak tensor (a Python-number argument of a jitted function) meets a typed one, as a Python number would.

    It takes the other's dtype when its kind fits; otherwise numpy's rule decides (an int32 tensor
    times a weak float is float64, as ``np.int32(2) * 2.5`` is).
    """
    strong, weak = (y, x) if x.weak else (x, y)
    target = dt.as_dtype(np.result_type(strong.dtype.np, weak.dtype.np.type(0).item()))
    return tuple(t if t.dtype == target else cast(t, target) for t in (x, y))


def _binary(tf_type, ir_name):
    def op(x, y, name=None):
        x, y = binary_inputs(x, y)
        return make_op(tf_type, [x, y], lambda b, u, v: b.op(ir_name, u, v), name=name)

    op.__name__ = ir_name
    op.__doc__ = f"Elementwise `{ir_name}` with broadcasting (TF op {tf_type})."
    return op


add = _binary("Add", "add")
subtract = sub = _binary("Sub", "sub")
multiply = mul = _binary("Mul", "mul")
floordiv = floor_div = _binary("FloorDiv", "floor_div")
mod = floormod = floor_mod = _binary("FloorMod", "floor_mod")
pow = _binary("Pow", "pow")
maximum = _binary("Maximum", "maximum")
minimum = _binary("Minimum", "minimum")
equal = _binary("Equal", "equal")
not_equal = _binary("NotEqual", "not_equal")
less = _binary("Less", "less")
less_equal = _binary("LessEqual", "less_equal")
greater = _binary("Greater", "greater")
greater_equal = _binary("GreaterEqual", "greater_equal")
logical_and = _binary("LogicalAnd", "logical_and")
logical_or = _binary("LogicalOr", "logical_or")


def logical_xor(x, y, name=None):
    x, y = binary_inputs(x, y)
    return make_op("LogicalXor", [x, y], lambda b, u, v: b.op("not_equal", u, v), name=name)


def _true_div_dtype(dtype):
    if dtype.is_floating:
        return dtype
    if dtype in (dt.int8, dt.int16, dt.uint8):
        return dt.float32
    if dtype in (dt.int32, dt.int64):
        return dt.float64
    raise TypeError(f"truediv does not support dtype {dtype.name}")


def _lower_truediv(b, u, v):
    if u.dtype != v.dtype:
        raise TypeError(f"truediv needs operands of one dtype, got {u.dtype.name} and {v.dtype.name}")
    to = _true_div_dtype(u.dtype)
    if to != u.dtype:
        u, v = b.op("cast", u, dtype=to), b.op("cast", v, dtype=to)
    return b.op("div", u, v)


def truediv(x, y, name=None):
    """``x / y``; integers are first cast to float (int32/int64 to float64), as in TF."""
    x, y = binary_inputs(x, y)
    return make_op("RealDiv", [x, y], _lower_truediv, name=name or "truediv")


divide = truediv


def div(x, y, name=None):
    """TF1 ``div``: true division for floats, floor division for integers."""
    x, y = binary_inputs(x, y)
    ir_name = "div" if x.dtype.is_floating else "floor_div"
    return make_op("Div", [x, y], lambda b, u, v: b.op(ir_name, u, v), name=name)


realdiv = truediv


def where(condition, x=None, y=None, name=None):
    """``where(c, x, y)``: elements of x where c is true, else y (broadcasting)."""
    if x is None or y is None:
        raise NotImplementedError("where() with one argument (the indices of true elements) has a "
                                  "data-dependent shape, which fuseflow does not support; pass x and y")
    c = convert_to_tensor(condition, dtype=dt.bool_)
    x, y = binary_inputs(x, y)
    return make_op("Select", [c, x, y], lambda b, c, u, v: b.op("select", c, u, v), name=name)


def cast(x, dtype, name=None):
    """Elementwise conversion to `dtype` (floats truncate toward zero into integers)."""
    x = convert_to_tensor(x)
    to = dt.as_dtype(dtype)

    def lower(b, v):
        return v if v.dtype == to else b.op("cast", v, dtype=to)

    return make_op("Cast", [x], lower, name=name)


def to_float(x, name=None):
    return cast(x, dt.float32, name=name)


def to_int32(x, name=None):
    return cast(x, dt.int32, name=name)


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """``min(max(t, lo), hi)``."""
    t = convert_to_tensor(t)
    lo = convert_to_tensor(clip_value_min, preferred_dtype=t.dtype)
    hi = convert_to_tensor(clip_value_max, preferred_dtype=t.dtype)
    return make_op("ClipByValue", [t, lo, hi],
                   lambda b, v, lo, hi: b.op("minimum", b.op("maximum", v, lo), hi), name=name)


# ----------------------------------------------------------------------------- reductions


def normalize_axes(axis, rank: int, what: str):
    """Sorted non-negative axes; ``None`` means all of them."""
    if axis is None:
        return tuple(range(rank))
    axes = [axis] if isinstance(axis, int) or getattr(axis, "ndim", 1) == 0 else list(axis)
    out = set()
    for a in axes:
        a = int(a)
        if not -rank <= a < builtins.max(rank, 1):
            raise ValueError(f"{what}: axis {a} is out of range for a tensor of rank {rank}")
        out.add(a % rank if rank else 0)
    return tuple(sorted(out))


def _reduction(tf_type, ir_name):
    def op(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None):
        x = convert_to_tensor(input_tensor)
        axis = reduction_indices if axis is None else axis
        if isinstance(axis, Tensor):
            if axis.known is None:
                raise ValueError(f"{ir_name}: the axis tensor '{axis.name}' must have a value known when the "
                                 "graph is built")
            axis = axis.known.tolist()
        keep = bool(keepdims if keepdims is not None else (keep_dims or False))

        def lower(b, v):
            axes = normalize_axes(axis, rank_of(v), ir_name)
            return b.op(ir_name, v, axes=axes, keepdims=keep)

        return make_op(tf_type, [x], lower, name=name)

    op.__name__ = ir_name
    op.__doc__ = f"`{ir_name}` over `axis` (None: all axes), keeping reduced dims as 1 with `keepdims`."
    return op


reduce_sum = _reduction("Sum", "reduce_sum")
reduce_mean = _reduction("Mean", "reduce_mean")
reduce_max = _reduction("Max", "reduce_max")
reduce_min = _reduction("Min", "reduce_min")
reduce_prod = _reduction("Prod", "reduce_prod")


def _arg_reduction(tf_type, ir_name):
    def op(input, axis=None, name=None, dimension=None, output_type=dt.int64):
        x = convert_to_tensor(input)
        axis = dimension if axis is None else axis
        axis = 0 if axis is None else int(axis)
        out = dt.as_dtype(output_type)

        def lower(b, v):
            (a,) = normalize_axes(axis, rank_of(v), ir_name)
            return b.op(ir_name, v, axis=a, output_type=out)

        return make_op(tf_type, [x], lower, name=name)

    op.__name__ = ir_name
    return op


argmax = arg_max = _arg_reduction("ArgMax", "argmax")
argmin = arg_min = _arg_reduction("ArgMin", "argmin")


def matmul(a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False,
           a_is_sparse=False, b_is_sparse=False, name=None):
    """Matrix product of the last two dims (batched over leading dims)."""
    a, b_ = binary_inputs(a, b)
    ta, tb = bool(transpose_a or adjoint_a), bool(transpose_b or adjoint_b)
    return make_op("MatMul", [a, b_], lambda bl, u, v: bl.op("matmul", u, v, transpose_a=ta, transpose_b=tb),
                   name=name)


def add_n(inputs, name=None):
    """The sum of a list of tensors of one shape and dtype."""
    tensors = [convert_to_tensor(t) for t in inputs]

    def lower(b, *vs):
        total = vs[0]
        for v in vs[1:]:
            total = b.op("add", total, v)
        return total

    return make_op("AddN", tensors, lower, name=name)
