"""Tensor conversion and the ops every other frontend module builds on: constant, placeholder, identity."""

from __future__ import annotations

import numpy as np

from fuseflow.frontend.graph import NeedsShape, Operation, Tensor, get_default_graph
from fuseflow.ir import dtypes as dt
from fuseflow.ir.types import TensorType, format_shape


def make_op(type, inputs, lower, name=None, exact_name=False, **attrs):
    """Creates an op in the default graph (or the inputs' graph); returns its output tensor(s)."""
    graph = inputs[0].graph if inputs else get_default_graph()
    op = graph.create_op(type, inputs, lower, attrs, name, exact_name)
    return op.outputs[0] if len(op.outputs) == 1 else op.outputs


def make_operation(type, inputs, lower, name=None, **attrs) -> Operation:
    graph = inputs[0].graph if inputs else get_default_graph()
    return graph.create_op(type, inputs, lower, attrs, name)


def _numpy_value(value, dtype, shape, name):
    if dtype is None:
        dtype = dt.result_type_of_python(value)
    dtype = dt.as_dtype(dtype)
    if dtype.is_string:
        arr = np.asarray(value, dtype=object)
        arr = np.vectorize(lambda s: s.encode() if isinstance(s, str) else bytes(s), otypes=[object])(arr) \
            if arr.size else arr
    else:
        raw = np.asarray(value)
        if raw.dtype.kind in "OSU":
            raise TypeError(f"constant '{name}': cannot convert {value!r} to {dtype.name}")
        arr = raw.astype(dtype.np)
        if raw.dtype.kind == "f" and dtype.is_integer and not np.array_equal(arr, raw):
            raise TypeError(f"constant '{name}': value {value!r} is not representable as {dtype.name}")
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        size = int(np.prod(shape, dtype=np.int64))
        if arr.size == size:
            arr = arr.reshape(shape)
        elif arr.ndim <= 1 and 0 < arr.size < size:
            flat = arr.reshape(-1)  # TF fills the rest with the last element
            arr = np.concatenate([flat, np.repeat(flat[-1:], size - flat.size)]).reshape(shape)
        else:
            raise ValueError(f"constant '{name}': a value of shape {format_shape(arr.shape)} "
                             f"({arr.size} elements) does not fit shape {format_shape(shape)}")
    return arr


def constant(value, dtype=None, shape=None, name="Const", verify_shape=False):
    """A tensor holding `value` (filled to `shape` as TF does)."""
    arr = _numpy_value(value, dtype, shape, name)
    return make_op("Const", [], lambda b: b.constant(arr), name=name)


def placeholder(dtype, shape=None, name=None):
    """A tensor that must be fed; `shape` dims may be None, `shape=None` accepts any rank."""
    dtype = dt.as_dtype(dtype)
    shape = None if shape is None else tuple(None if d is None else int(d) for d in _shape_list(shape))
    type_ = TensorType(dtype, shape)

    def lower(b):
        return b.placeholder(type_)

    return make_op("Placeholder", [], lower, name=name or "Placeholder")


def _shape_list(shape):
    if hasattr(shape, "dims"):
        shape = shape.dims
        if shape is None:
            return None
    if isinstance(shape, (int, np.integer)):
        return [shape]
    return list(shape)


def convert_to_tensor(value, dtype=None, name=None, preferred_dtype=None) -> Tensor:
    """A Tensor for `value`: tensors pass through (dtype checked), Variables read, values become constants."""
    if hasattr(value, "_as_graph_element") and not isinstance(value, Tensor):
        value = value._as_graph_element()
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype != dt.as_dtype(dtype):
            raise TypeError(f"tensor '{value.name}' has dtype {value.dtype.name}, expected {dt.as_dtype(dtype).name}")
        return value
    if isinstance(value, Operation):
        raise TypeError(f"operation '{value.name}' has no value to use as a tensor")
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) or hasattr(v, "_as_graph_element")
                                                 for v in value):
        from fuseflow.frontend.array_ops import stack

        return stack(list(value), name=name or "packed")
    target = dtype if dtype is not None else preferred_dtype
    if target is not None and dtype is None:
        try:
            return constant(value, dtype=target, name=name or "Const")
        except TypeError:
            return constant(value, name=name or "Const")
    return constant(value, dtype=target, name=name or "Const")


def identity(input, name=None):
    """The same value under a new name (a fetch point)."""
    x = convert_to_tensor(input)
    return make_op("Identity", [x], lambda b, x: x, name=name or "Identity")


def no_op(name=None):
    return make_operation("NoOp", [], lambda b: (), name=name or "NoOp")


def group(*inputs, name=None):
    """An op that runs all `inputs` (as control dependencies) and has no value."""
    graph = get_default_graph()
    flat = []
    for item in inputs:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    with graph.control_dependencies([x for x in flat if x is not None]):
        return no_op(name=name or "group_deps")


def tuple_(tensors, name=None):
    with get_default_graph().control_dependencies(tensors):
        return [identity(t) for t in tensors]


def static_shape(t: Tensor):
    """The static dims of `t`, or raise NeedsShape during inference when its rank is unknown."""
    if t.type.shape is None:
        raise NeedsShape(t.dtype)
    return t.type.shape
