"""Shapes and data movement: reshape, transpose, concat/stack/split, slicing, fill, range, one_hot, gather, tile."""

from __future__ import annotations

import math

import numpy as np

from fuseflow.frontend.core_ops import _shape_list, convert_to_tensor, make_op
from fuseflow.frontend.graph import NeedsShape, Tensor
from fuseflow.frontend.math_ops import normalize_axes, rank_of
from fuseflow.ir import dtypes as dt
from fuseflow.ir.types import TensorType, format_shape


def dims_value(b, v, what):
    """The value of a shape-like IR value `v`, which must follow from constants; None during inference."""
    value = b.known(v)
    if value is None:
        if hasattr(b, "unknown"):
            return None
        raise ValueError(f"{what}: the value of this shape tensor must be computable when the graph is compiled")
    return [int(d) for d in np.asarray(value).reshape(-1)]


def _static_or_tensor(shape):
    """A shape argument as ('list', dims) or ('tensor', Tensor)."""
    if isinstance(shape, Tensor) or hasattr(shape, "_as_graph_element"):
        return None, [convert_to_tensor(shape)]
    if isinstance(shape, (list, tuple)) and any(isinstance(d, Tensor) for d in shape):
        return None, [convert_to_tensor(list(shape))]
    return [None if d is None else int(d) for d in _shape_list(shape)], []


def reshape(tensor, shape, name=None):
    """Same elements, new shape; one dim may be -1."""
    x = convert_to_tensor(tensor)
    dims, extra = _static_or_tensor(shape)

    def lower(b, v, *shape_v):
        new = dims if not shape_v else dims_value(b, shape_v[0], "reshape")
        if new is None:
            n = shape_v[0].type.shape[0] if shape_v[0].type.shape else None
            return b.unknown(TensorType(v.dtype, (None,) * n)) if n is not None else _needs(v)
        return b.op("reshape", v, shape=tuple(new))

    return make_op("Reshape", [x] + extra, lower, name=name)


def _needs(v):
    raise NeedsShape(v.dtype)


def transpose(a, perm=None, name=None):
    """Permute dims (default: reverse them)."""
    x = convert_to_tensor(a)

    def lower(b, v):
        p = tuple(range(rank_of(v)))[::-1] if perm is None else tuple(int(i) for i in perm)
        return b.op("transpose", v, perm=p)

    return make_op("Transpose", [x], lower, name=name or "transpose")


def concat(values, axis, name="concat"):
    """Join tensors along `axis`."""
    tensors = [convert_to_tensor(v) for v in values]
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    dtype = tensors[0].dtype
    tensors = [tensors[0]] + [convert_to_tensor(t, preferred_dtype=dtype) for t in tensors[1:]]

    def lower(b, *vs):
        if len(vs) == 1:
            return vs[0]
        (a,) = normalize_axes(int(axis), rank_of(vs[0]), "concat")
        return b.op("concat", *vs, axis=a)

    return make_op("ConcatV2", tensors, lower, name=name)


def _expand(b, v, axis):
    shape = list(v.type.shape) if v.type.shape is not None else _needs(v)
    (a,) = normalize_axes(axis, len(shape) + 1, "expand_dims")
    return b.op("reshape", v, shape=tuple(shape[:a] + [1] + shape[a:]))


def expand_dims(input, axis=None, name=None, dim=None):
    """Insert a size-1 dim at `axis`."""
    x = convert_to_tensor(input)
    axis = dim if axis is None else axis
    return make_op("ExpandDims", [x], lambda b, v: _expand(b, v, int(axis)), name=name)


def stack(values, axis=0, name="stack"):
    """Stack same-shaped tensors along a new `axis`."""
    tensors = [convert_to_tensor(v) for v in values]
    dtype = tensors[0].dtype
    tensors = [tensors[0]] + [convert_to_tensor(t, preferred_dtype=dtype) for t in tensors[1:]]

    def lower(b, *vs):
        parts = [_expand(b, v, axis) for v in vs]
        if len(parts) == 1:
            return parts[0]
        (a,) = normalize_axes(axis, rank_of(parts[0]), "stack")
        return b.op("concat", *parts, axis=a)

    return make_op("Pack", tensors, lower, name=name)


pack = stack


def _take(b, v, axis, start, stop, drop):
    shape = v.type.shape
    slices = tuple((start, stop, 1) if i == axis else (None, None, None) for i in range(len(shape)))
    part = b.op("slice", v, slices=slices)
    if not drop:
        return part
    return b.op("reshape", part, shape=tuple(d for i, d in enumerate(part.type.shape) if i != axis))


def unstack(value, num=None, axis=0, name="unstack"):
    """Split along `axis` into its rank-(r-1) slices."""
    x = convert_to_tensor(value)
    shape = x.type.shape
    if shape is None:
        raise ValueError(f"unstack: tensor '{x.name}' has an unknown rank")
    (a,) = normalize_axes(axis, len(shape), "unstack")
    n = shape[a] if num is None else num
    if n is None:
        raise ValueError(f"unstack: cannot infer num from shape {format_shape(shape)} of '{x.name}'")

    def lower(b, v):
        return tuple(_take(b, v, a, i, i + 1, True) for i in range(n))

    out = make_op("Unpack", [x], lower, name=name)
    return list(out) if isinstance(out, tuple) else [out]


unpack = unstack


def split(value, num_or_size_splits, axis=0, num=None, name="split"):
    """Split along `axis` into equal parts (an int) or parts of the given sizes (a list)."""
    x = convert_to_tensor(value)
    shape = x.type.shape
    if shape is None:
        raise ValueError(f"split: tensor '{x.name}' has an unknown rank")
    (a,) = normalize_axes(int(axis), len(shape), "split")
    dim = shape[a]
    if isinstance(num_or_size_splits, int):
        if dim is None:
            raise ValueError(f"split: dim {a} of '{x.name}' is unknown, cannot split it in {num_or_size_splits}")
        if dim % num_or_size_splits:
            raise ValueError(f"split: dim {a} of size {dim} of '{x.name}' does not divide into "
                             f"{num_or_size_splits} equal parts")
        sizes = [dim // num_or_size_splits] * num_or_size_splits
    else:
        sizes = [int(s) for s in num_or_size_splits]
        if -1 in sizes and dim is not None:
            sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
        if dim is not None and sum(sizes) != dim:
            raise ValueError(f"split: sizes {sizes} do not add up to dim {a} of size {dim} of '{x.name}'")
    starts = np.cumsum([0] + sizes[:-1]).tolist()

    def lower(b, v):
        return tuple(_take(b, v, a, s, s + n, False) for s, n in zip(starts, sizes))

    out = make_op("Split", [x], lower, name=name)
    return list(out) if isinstance(out, tuple) else [out]


def squeeze(input, axis=None, name=None, squeeze_dims=None):
    """Remove size-1 dims (all of them, or those in `axis`)."""
    x = convert_to_tensor(input)
    axis = squeeze_dims if axis is None else axis

    def lower(b, v):
        shape = v.type.shape if v.type.shape is not None else _needs(v)
        if axis is None:
            if None in shape:
                _needs(v)
            drop = {i for i, d in enumerate(shape) if d == 1}
        else:
            drop = set(normalize_axes(axis, len(shape), "squeeze"))
            for i in drop:
                if shape[i] not in (1, None):
                    raise ValueError(f"squeeze: dim {i} of shape {format_shape(shape)} is not 1")
        return b.op("reshape", v, shape=tuple(d for i, d in enumerate(shape) if i not in drop))

    return make_op("Squeeze", [x], lower, name=name)


def _shape_info(kind, out_type):
    def lower(b, v):
        shape = v.type.shape
        if shape is None:
            return b.unknown(TensorType(out_type, (None,) if kind == "shape" else ()))
        if not v.type.is_static:
            return b.unknown(TensorType(out_type, (len(shape),) if kind == "shape" else ()))
        value = {"shape": list(shape), "size": math.prod(shape), "rank": len(shape)}[kind]
        return b.constant(np.array(value, dtype=out_type.np))

    return lower


def shape(input, name=None, out_type=dt.int32):
    """The dynamic shape of `input` as a 1-D integer tensor."""
    x = convert_to_tensor(input)
    return make_op("Shape", [x], _shape_info("shape", dt.as_dtype(out_type)), name=name)


def size(input, name=None, out_type=dt.int32):
    x = convert_to_tensor(input)
    return make_op("Size", [x], _shape_info("size", dt.as_dtype(out_type)), name=name)


def rank(input, name=None):
    x = convert_to_tensor(input)
    return make_op("Rank", [x], _shape_info("rank", dt.int32), name=name)


def fill(dims, value, name=None):
    """A tensor of shape `dims` filled with `value`."""
    v = convert_to_tensor(value)
    shape_list, extra = _static_or_tensor(dims)

    def lower(b, val, *dims_v):
        new = shape_list if not dims_v else dims_value(b, dims_v[0], "fill")
        if new is None:
            n = dims_v[0].type.shape[0] if dims_v[0].type.shape else None
            return b.unknown(TensorType(val.dtype, (None,) * n)) if n is not None else _needs(val)
        return b.op("broadcast_to", val, shape=tuple(new))

    return make_op("Fill", [v] + extra, lower, name=name)


def zeros(shape, dtype=dt.float32, name=None):
    return fill(shape, np.zeros((), dt.as_dtype(dtype).np), name=name or "zeros")


def ones(shape, dtype=dt.float32, name=None):
    return fill(shape, np.ones((), dt.as_dtype(dtype).np), name=name or "ones")


def _like(tensor, value, dtype, name):
    x = convert_to_tensor(tensor)
    to = dt.as_dtype(dtype) if dtype is not None else x.dtype

    def lower(b, v):
        if v.type.shape is None:
            _needs(v)
        return b.op("broadcast_to", b.constant(np.array(value, to.np)), shape=v.type.shape)

    return make_op("ZerosLike" if value == 0 else "OnesLike", [x], lower, name=name)


def zeros_like(tensor, dtype=None, name=None, optimize=True):
    return _like(tensor, 0, dtype, name)


def ones_like(tensor, dtype=None, name=None, optimize=True):
    return _like(tensor, 1, dtype, name)


def range_(start, limit=None, delta=1, dtype=None, name="range"):
    """``[start, start+delta, ...)`` up to `limit`; the bounds must be known when the graph is built."""
    if limit is None:
        start, limit = 0, start
    vals = []
    for v in (start, limit, delta):
        if isinstance(v, Tensor):
            if v.known is None:
                raise ValueError(f"range: the bound '{v.name}' must have a value known when the graph is built")
            v = v.known.item()
        vals.append(v)
    start, limit, delta = vals
    if delta == 0:
        raise ValueError("range: delta must not be 0")
    if dtype is None:
        dtype = dt.float32 if any(isinstance(v, float) for v in vals) else dt.int32
    dtype = dt.as_dtype(dtype)
    n = max(0, math.ceil((limit - start) / delta))

    def lower(b):
        idx = b.op("iota", shape=(n,), axis=0, dtype=dtype)
        if delta != 1:
            idx = b.op("mul", idx, b.constant(np.array(delta, dtype.np)))
        if start != 0:
            idx = b.op("add", idx, b.constant(np.array(start, dtype.np)))
        return idx

    return make_op("Range", [], lower, name=name)


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    """Vectors with `on_value` at each index and `off_value` elsewhere (out-of-range indices: all off)."""
    idx = convert_to_tensor(indices)
    if not idx.dtype.is_integer:
        raise TypeError(f"one_hot: indices '{idx.name}' must be integers, got {idx.dtype.name}")
    dtype = dt.as_dtype(dtype) if dtype is not None else (
        on_value.dtype if isinstance(on_value, Tensor) else dt.float32)
    on = convert_to_tensor(1 if on_value is None else on_value, dtype=dtype)
    off = convert_to_tensor(0 if off_value is None else off_value, dtype=dtype)
    depth = int(depth.known if isinstance(depth, Tensor) else depth)
    ax = -1 if axis is None else int(axis)

    def lower(b, i, on_v, off_v):
        r = rank_of(i)
        (a,) = normalize_axes(ax, r + 1, "one_hot")
        shape = list(i.type.shape[:a]) + [depth] + list(i.type.shape[a:])
        pos = b.op("iota", shape=tuple(1 if k != a else depth for k in range(r + 1)), axis=a,
                   dtype=i.dtype)
        hit = b.op("equal", _expand(b, i, a), pos)
        return b.op("broadcast_to", b.op("select", hit, on_v, off_v), shape=tuple(shape))

    return make_op("OneHot", [idx, on, off], lower, name=name)


def gather(params, indices, axis=0, name=None, validate_indices=None):
    """Slices of `params` along `axis` picked by integer `indices`."""
    p = convert_to_tensor(params)
    i = convert_to_tensor(indices)

    def lower(b, pv, iv):
        (a,) = normalize_axes(int(axis), rank_of(pv), "gather")
        return b.op("gather", pv, iv, axis=a)

    return make_op("GatherV2", [p, i], lower, name=name)


def tile(input, multiples, name=None):
    """Repeat `input` `multiples[i]` times along dim i."""
    x = convert_to_tensor(input)
    reps = multiples.known.tolist() if isinstance(multiples, Tensor) and multiples.known is not None else multiples
    if isinstance(reps, Tensor):
        raise ValueError(f"tile: multiples '{reps.name}' must be known when the graph is built")  # noqa: TRY004
    reps = [int(m) for m in reps]

    def lower(b, v):
        shape = v.type.shape if v.type.shape is not None else _needs(v)
        if len(reps) != len(shape):
            raise ValueError(f"tile: {len(reps)} multiples for shape {format_shape(shape)}")
        inter = [d for s in shape for d in (1, s)]
        big = [d for m, s in zip(reps, shape) for d in (m, s)]
        out = tuple(None if s is None else m * s for m, s in zip(reps, shape))
        grown = b.op("broadcast_to", b.op("reshape", v, shape=tuple(inter)), shape=tuple(big))
        return b.op("reshape", grown, shape=out)

    return make_op("Tile", [x], lower, name=name)
