"""NumPy's protocols on symbolic tensors: ``np.exp(t)``, ``np.sum(t, axis=1)``, ``x @ W`` build graph ops.

Code written against numpy compiles unchanged under tracing: `Tensor.__array_ufunc__` maps each
supported ufunc to its op and `Tensor.__array_function__` the supported numpy functions. Anything
else raises `UnsupportedNumpyError` naming the function and the user's line: never a silent
fallback to numpy, which would try to turn a symbolic tensor into an array.

Dtypes follow numpy's own rule (``ufunc.resolve_dtypes``): ``np.exp`` of ints is float64, int/int
true division is float64, two tensors of different dtypes promote, and a Python number is *weak*:
it takes the tensor's dtype when its kind fits (``x32 * 2.0`` is float32). In a graph traced by
`fuseflow.jit` numpy arrays and scalars are strong, as in numpy (``x32 * np.float64(2)`` is
float64); in a TF1 graph they are weak like Python numbers, because there ``ndarray - tensor``
reaches us through numpy and TF1 gives it the tensor's dtype.
"""

from __future__ import annotations

import numpy as np

from fuseflow.frontend import array_ops as a
from fuseflow.frontend import math_ops as m
from fuseflow.frontend.core_ops import constant, convert_to_tensor, identity
from fuseflow.frontend.graph import Tensor, user_location
from fuseflow.ir import dtypes as dt


class UnsupportedNumpyError(TypeError):
    """A numpy function or ufunc with no fuseflow op, called on a symbolic tensor."""


def _unsupported(what: str, detail: str = ""):
    file, line = user_location()
    where = f" at {file}:{line}" if file else ""
    raise UnsupportedNumpyError(f"{what} is not supported on fuseflow tensors (called{where}){detail}; "
                                "rewrite it with supported numpy functions or fuseflow ops")


# ----------------------------------------------------------------------------- dtypes

_WEAK_KIND = {"b": bool, "i": int, "u": int, "f": float}


def _is_tensor(x) -> bool:
    return isinstance(x, Tensor) or hasattr(x, "_as_graph_element")


def _resolve_key(x, numpy_rules: bool):
    """What numpy's dtype resolution sees: a dtype, or a Python type standing for a weak value."""
    if _is_tensor(x):
        t = convert_to_tensor(x)
        return _WEAK_KIND[t.dtype.np.kind] if t.weak else t.dtype.np
    dtype = np.asarray(x).dtype
    if dtype.kind not in _WEAK_KIND:
        _unsupported(f"a {type(x).__name__} operand of dtype {dtype}")
    if numpy_rules and type(x) not in (bool, int, float):  # (np.float64 subclasses float)
        return dtype
    return _WEAK_KIND[dtype.kind]


def _numpy_rules(operands) -> bool:
    """Whether the operands' graph was traced by jit (numpy's rules) rather than built as a TF1 graph."""
    return any(_is_tensor(x) and convert_to_tensor(x).graph.numpy_semantics for x in operands)


def as_typed(x, dtype: np.dtype) -> Tensor:
    """`x` as a tensor of `dtype`: tensors are cast when they differ, other values become constants."""
    if _is_tensor(x):
        t = convert_to_tensor(x)
        return t if t.dtype.np == dtype else m.cast(t, dt.as_dtype(dtype))
    return constant(np.asarray(x).astype(dtype))


def promote(ufunc, operands) -> tuple[list, np.dtype]:
    """The operands cast to the input dtypes of `ufunc`'s numpy loop, and the loop's output dtype."""
    rules = _numpy_rules(operands)
    keys = tuple(_resolve_key(x, rules) for x in operands)
    try:
        loop = ufunc.resolve_dtypes(keys + (None,) * ufunc.nout)
    except TypeError as e:  # numpy has no loop for these dtypes
        _unsupported(f"numpy.{ufunc.__name__} on dtypes {keys}", f": {e}")
    return [as_typed(x, d) for x, d in zip(operands, loop)], loop[-1]


# ----------------------------------------------------------------------------- ufuncs

def _matmul(x, y):
    x, y = convert_to_tensor(x), convert_to_tensor(y)
    if x.shape.ndims == 1 and y.shape.ndims == 1:
        return m.reduce_sum(x * y)
    if x.shape.ndims == 1:
        return a.squeeze(m.matmul(a.expand_dims(x, 0), y), [-2])
    if y.shape.ndims == 1:
        return a.squeeze(m.matmul(x, a.expand_dims(y, -1)), [-1])
    return m.matmul(x, y)


UFUNCS = {
    np.add: m.add, np.subtract: m.subtract, np.multiply: m.multiply, np.true_divide: m.truediv,
    np.floor_divide: m.floordiv, np.remainder: m.floormod, np.power: m.pow,
    np.maximum: m.maximum, np.minimum: m.minimum, np.matmul: _matmul,
    np.negative: m.negative, np.positive: identity, np.absolute: m.abs, np.sign: m.sign,
    np.exp: m.exp, np.log: m.log, np.log1p: m.log1p, np.sqrt: m.sqrt, np.square: m.square,
    np.reciprocal: m.reciprocal, np.tanh: m.tanh, np.sin: m.sin, np.cos: m.cos,
    np.floor: m.floor, np.ceil: m.ceil, np.rint: m.round,
    np.greater: m.greater, np.greater_equal: m.greater_equal, np.less: m.less, np.less_equal: m.less_equal,
    np.equal: m.equal, np.not_equal: m.not_equal,
    np.logical_and: m.logical_and, np.logical_or: m.logical_or, np.logical_xor: m.logical_xor,
    np.logical_not: m.logical_not,
}


def apply_ufunc(ufunc, method, inputs, kwargs):
    """``ufunc(*inputs)`` on tensors, with numpy's dtype rule."""
    if method != "__call__":
        _unsupported(f"numpy.{ufunc.__name__}.{method}")
    fn = UFUNCS.get(ufunc)
    if fn is None:
        _unsupported(f"numpy.{ufunc.__name__}")
    extra = set(kwargs) - {"dtype"}  # (numpy passes `out` only when the caller gave one)
    if extra:
        _unsupported(f"numpy.{ufunc.__name__} with {', '.join(sorted(extra))}=")
    operands, out_dtype = promote(ufunc, inputs)
    result = fn(*operands)
    if result.dtype.np != out_dtype:
        result = m.cast(result, dt.as_dtype(out_dtype))
    return result if kwargs.get("dtype") is None else as_typed(result, np.dtype(kwargs["dtype"]))


# ----------------------------------------------------------------------------- functions

def _no_extras(name: str, out=None, kwargs=None) -> None:
    """Refuses ``out=`` and keyword arguments fuseflow does not implement (never ignored silently)."""
    if out is not None or kwargs:
        _unsupported(f"numpy.{name} with {', '.join(['out'] * (out is not None) + sorted(kwargs or ()))}=")


def _sum_dtype(x: Tensor, dtype):
    """numpy's accumulator dtype for sum/prod: small ints and bools widen to int64 (uint64 for unsigned)."""
    if dtype is not None:
        return np.dtype(dtype)
    kind = x.dtype.np.kind
    return np.dtype(np.int64) if kind in "bi" else np.dtype(np.uint64) if kind == "u" else x.dtype.np


def _reducer(name, fn, accumulate):
    def reduce(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        _no_extras(name, out, kwargs)
        x = convert_to_tensor(x)
        if accumulate:
            x = as_typed(x, _sum_dtype(x, dtype))
        return fn(x, axis=axis, keepdims=bool(keepdims))

    return reduce


def _mean(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    _no_extras("mean", out, kwargs)
    x = convert_to_tensor(x)
    # numpy averages ints in float64
    target = np.dtype(dtype) if dtype is not None else x.dtype.np if x.dtype.is_floating else np.dtype(np.float64)
    return m.reduce_mean(as_typed(x, target), axis=axis, keepdims=bool(keepdims))


def _where(condition, x=None, y=None):
    if x is None or y is None:
        _unsupported("numpy.where with one argument (its result shape depends on the data)")
    # a weak operand enters numpy's rule as a Python scalar value, which it treats as weak too
    rules = _numpy_rules((condition, x, y))
    target = np.result_type(*[k(0) if isinstance(k, type) else k for k in (_resolve_key(x, rules),
                                                                          _resolve_key(y, rules))])
    return m.where(as_typed(condition, np.dtype(bool)), as_typed(x, target), as_typed(y, target))


def _arg(fn):
    def arg(x, axis=None, out=None, keepdims=False):
        x = convert_to_tensor(x)
        if axis is None:
            x, axis = a.reshape(x, [-1]), 0
        result = fn(x, axis=axis)
        return a.expand_dims(result, axis) if keepdims else result

    return arg


def _clip(x, a_min=None, a_max=None, out=None, **kwargs):
    _no_extras("clip", out, kwargs)
    x = convert_to_tensor(x)
    if a_min is not None:
        x = apply_ufunc(np.maximum, "__call__", (x, a_min), {})
    if a_max is not None:
        x = apply_ufunc(np.minimum, "__call__", (x, a_max), {})
    return x


def _dot(x, y, out=None):
    _no_extras("dot", out)
    x, y = convert_to_tensor(x), convert_to_tensor(y)
    if x.shape.ndims == 0 or y.shape.ndims == 0:
        return apply_ufunc(np.multiply, "__call__", (x, y), {})
    return apply_ufunc(np.matmul, "__call__", (x, y), {})


def _like(value):
    def like(x, dtype=None, **kwargs):
        _no_extras("zeros_like" if value == 0 else "ones_like", kwargs=kwargs)
        x = convert_to_tensor(x)
        return (a.ones_like if value else a.zeros_like)(x, dtype=None if dtype is None else dt.as_dtype(dtype))

    return like


def _reshape(x, shape, order="C", **kwargs):
    _no_extras("reshape", kwargs=kwargs if order == "C" else {"order": order, **kwargs})
    return a.reshape(x, [shape] if isinstance(shape, int) else list(shape))


def _concatenate(arrays, axis=0, **kwargs):
    _no_extras("concatenate", kwargs=kwargs)
    return a.concat([convert_to_tensor(x) for x in arrays], axis=axis)


def _stack(arrays, axis=0, **kwargs):
    _no_extras("stack", kwargs=kwargs)
    return a.stack([convert_to_tensor(x) for x in arrays], axis=axis)


FUNCTIONS = {
    np.sum: _reducer("sum", m.reduce_sum, True), np.prod: _reducer("prod", m.reduce_prod, True),
    np.max: _reducer("max", m.reduce_max, False), np.min: _reducer("min", m.reduce_min, False),
    np.amax: _reducer("amax", m.reduce_max, False), np.amin: _reducer("amin", m.reduce_min, False),
    np.mean: _mean, np.where: _where, np.clip: _clip, np.dot: _dot,
    np.argmax: _arg(m.argmax), np.argmin: _arg(m.argmin),
    np.reshape: _reshape,
    np.transpose: lambda x, axes=None: a.transpose(x, axes),
    np.expand_dims: lambda x, axis: a.expand_dims(x, axis),
    np.squeeze: lambda x, axis=None: a.squeeze(x, axis),
    np.concatenate: _concatenate, np.stack: _stack,
    np.zeros_like: _like(0), np.ones_like: _like(1),
    np.ndim: lambda x: convert_to_tensor(x).shape.ndims,
    np.shape: lambda x: tuple(convert_to_tensor(x).shape.dims),
}


def apply_function(func, args, kwargs):
    impl = FUNCTIONS.get(func)
    if impl is None:
        _unsupported(f"numpy.{func.__name__}")
    return impl(*args, **kwargs)


# ----------------------------------------------------------------------------- Tensor methods

def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    return apply_ufunc(ufunc, method, inputs, kwargs)


def _array_function(self, func, types, args, kwargs):
    return apply_function(func, args, kwargs)


def _array(self, dtype=None, copy=None):
    raise TypeError(f"tensor '{self.name}' is symbolic: its value exists only when the graph runs, so it cannot "
                    "become a numpy array (inside @fuseflow.jit use numpy functions on it, which build ops)")


METHODS = {
    "__array_ufunc__": _array_ufunc,
    "__array_function__": _array_function,
    "__array__": _array,
    "sum": FUNCTIONS[np.sum], "prod": FUNCTIONS[np.prod], "mean": _mean,
    "max": FUNCTIONS[np.max], "min": FUNCTIONS[np.min],
    "argmax": FUNCTIONS[np.argmax], "argmin": FUNCTIONS[np.argmin], "clip": _clip,
    "reshape": lambda self, *shape, **kw: a.reshape(self, list(shape[0] if len(shape) == 1 and not
                                                                 isinstance(shape[0], int) else shape)),
    "astype": lambda self, dtype, **kw: as_typed(self, np.dtype(dt.as_dtype(dtype).np)),
    "T": property(lambda self: a.transpose(self)),
    "ndim": property(lambda self: self.shape.ndims),
}


def install(cls) -> None:
    """Gives `cls` (Tensor) numpy's protocols and the numpy-style methods above."""
    for name, fn in METHODS.items():
        setattr(cls, name, fn)


install(Tensor)
