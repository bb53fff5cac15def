"""Python operators and ``t[...]`` slicing on tensors (and variables, which delegate here)."""

from __future__ import annotations

import numpy as np

from fuseflow.frontend import math_ops as m
from fuseflow.frontend.core_ops import convert_to_tensor, make_op
from fuseflow.frontend.graph import NeedsShape, Tensor
from fuseflow.ir.types import format_shape


def _parse_key(key):
    if not isinstance(key, tuple):
        key = (key,)
    items = []
    for k in key:
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            items.append(("index", int(k)))
        elif isinstance(k, slice):
            for part in (k.start, k.stop, k.step):
                if part is not None and not isinstance(part, (int, np.integer)):
                    raise TypeError(f"slice bounds must be Python ints, got {part!r}: tensor-valued slice "
                                    "bounds are not supported")
            items.append(("slice", (k.start, k.stop, k.step)))
        elif k is Ellipsis:
            items.append(("ellipsis", None))
        elif k is None:
            items.append(("newaxis", None))
        else:
            raise TypeError(f"only ints, slices, Ellipsis and None (newaxis) may index a tensor, got {k!r}")
    if sum(kind == "ellipsis" for kind, _ in items) > 1:
        raise ValueError("an index can only have one ellipsis (...)")
    return items


def _lower_getitem(b, v, items):
    if v.type.shape is None:
        raise NeedsShape(v.dtype)
    shape = v.type.shape
    consumed = sum(kind in ("index", "slice") for kind, _ in items)
    if consumed > len(shape):
        raise ValueError(f"too many indices ({consumed}) for a tensor of shape {format_shape(shape)}")
    if not any(kind == "ellipsis" for kind, _ in items):
        items = items + [("ellipsis", None)]
    slices, out_dims, dim = [], [], 0
    for kind, arg in items:
        if kind == "ellipsis":
            for _ in range(len(shape) - consumed):
                slices.append((None, None, None))
                out_dims.append(("keep", dim))
                dim += 1
        elif kind == "newaxis":
            out_dims.append(("new", None))
        elif kind == "slice":
            slices.append(arg)
            out_dims.append(("keep", dim))
            dim += 1
        else:
            n = shape[dim]
            if n is not None and not -n <= arg < n:
                raise ValueError(f"index {arg} is out of bounds for dim {dim} of shape {format_shape(shape)}")
            stop = None if arg == -1 else arg + 1
            slices.append((arg, stop, 1))
            dim += 1
    part = b.op("slice", v, slices=tuple(slices))
    new_shape = tuple(1 if kind == "new" else part.type.shape[d] for kind, d in out_dims)
    return part if new_shape == part.type.shape else b.op("reshape", part, shape=new_shape)


def getitem(tensor, key):
    """``t[key]`` with ints, slices (negative and reversed too), ``...`` and ``None``."""
    x = convert_to_tensor(tensor)
    items = _parse_key(key)
    return make_op("StridedSlice", [x], lambda b, v: _lower_getitem(b, v, items), name="strided_slice")


def _reverse(fn):
    return lambda self, other: fn(other, self)


def _logic(fn, name):
    def op(self, other):
        x, y = m.binary_inputs(self, other)
        if x.dtype.name != "bool":
            raise TypeError(f"operator {name} needs bool tensors, got {x.dtype.name} ('{x.name}')")
        return fn(x, y)

    return op


OPERATORS = {
    "__add__": m.add, "__radd__": _reverse(m.add),
    "__sub__": m.subtract, "__rsub__": _reverse(m.subtract),
    "__mul__": m.multiply, "__rmul__": _reverse(m.multiply),
    "__truediv__": m.truediv, "__rtruediv__": _reverse(m.truediv),
    "__floordiv__": m.floordiv, "__rfloordiv__": _reverse(m.floordiv),
    "__mod__": m.floormod, "__rmod__": _reverse(m.floormod),
    "__pow__": m.pow, "__rpow__": _reverse(m.pow),
    "__matmul__": m.matmul, "__rmatmul__": _reverse(m.matmul),
    "__lt__": m.less, "__le__": m.less_equal, "__gt__": m.greater, "__ge__": m.greater_equal,
    "__and__": _logic(m.logical_and, "&"), "__rand__": _reverse(_logic(m.logical_and, "&")),
    "__or__": _logic(m.logical_or, "|"), "__ror__": _reverse(_logic(m.logical_or, "|")),
    "__xor__": _logic(m.logical_xor, "^"), "__rxor__": _reverse(_logic(m.logical_xor, "^")),
    "__neg__": lambda self: m.negative(self),
    "__abs__": lambda self: m.abs(self),
    "__invert__": lambda self: m.logical_not(self),
    "__getitem__": getitem,
}


# In a graph traced by `fuseflow.jit` the operators follow numpy's dtype rules, as the numpy
# functions there do (``int_tensor * 2.5`` is float64, as in numpy; TF1 refuses it).
NUMPY_UFUNCS = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor,
    "neg": np.negative, "abs": np.absolute, "invert": np.logical_not,
}


def _with_numpy_rules(name: str, fn):
    key = name.strip("_")
    ufunc = NUMPY_UFUNCS.get(key[1:] if key.startswith("r") and key[1:] in NUMPY_UFUNCS else key)
    if ufunc is None:
        return fn
    swap = key not in NUMPY_UFUNCS

    def op(self, *other):
        if not getattr(getattr(self, "graph", None), "numpy_semantics", False):
            return fn(self, *other)
        from fuseflow.frontend.numpy_api import apply_ufunc

        operands = (*other, self) if swap else (self, *other)
        return apply_ufunc(ufunc, "__call__", operands, {})

    return op


def install(cls) -> None:
    """Gives `cls` (Tensor, Variable) the Python operators."""
    for name, fn in OPERATORS.items():
        setattr(cls, name, _with_numpy_rules(name, fn))


install(Tensor)
