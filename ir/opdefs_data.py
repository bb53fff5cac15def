"""Op table, part two: data movement, generators, random numbers and control ops.

Shapes in attributes are static after lowering; in the frontend they may hold
``None`` (unknown) dims, which the type rules propagate. ``reshape`` accepts one
``-1`` dim, resolved when the operand's size is known.
"""

from __future__ import annotations

import numpy as np

from fuseflow.ir import dtypes as dt
from fuseflow.ir.opdefs import _check_dtype, _norm_axis, _same_dtype, broadcast_shapes, define
from fuseflow.ir.types import TensorType, format_shape


def _reshape_rule(types, attrs, name):
    (x,) = types
    shape = tuple(attrs["shape"])
    if shape.count(-1) > 1:
        raise ValueError(f"{name}: at most one -1 in the new shape {list(shape)}")
    if any(d is not None and d < -1 for d in shape):
        raise ValueError(f"{name}: negative dim in the new shape {list(shape)}")
    size = TensorType(x.dtype, x.shape).size
    known = 1
    for d in shape:
        if d not in (None, -1):
            known *= d
    if -1 in shape:
        if size is None or None in shape:
            return (TensorType(x.dtype, tuple(None if d == -1 else d for d in shape)),)
        if known == 0 or size % known:
            raise ValueError(f"{name}: cannot reshape a tensor of shape {format_shape(x.shape)} "
                             f"({size} elements) into {list(shape)}")
        shape = tuple(size // known if d == -1 else d for d in shape)
    elif size is not None and None not in shape and known != size:
        raise ValueError(f"{name}: cannot reshape a tensor of shape {format_shape(x.shape)} "
                         f"({size} elements) into shape {format_shape(shape)} ({known} elements)")
    return (TensorType(x.dtype, shape),)


define("reshape", "data-movement", _reshape_rule, lambda x, shape: x.reshape(shape), attrs=("shape",), arity=1,
       doc="Same elements in row-major order, new ``shape`` (one dim may be -1).")


def _transpose_rule(types, attrs, name):
    (x,) = types
    perm = tuple(attrs["perm"])
    if x.shape is None:
        return (TensorType(x.dtype, None),)
    if sorted(perm) != list(range(x.rank)):
        raise ValueError(f"{name}: perm {list(perm)} is not a permutation of the {x.rank} dims "
                         f"of shape {format_shape(x.shape)}")
    return (TensorType(x.dtype, tuple(x.shape[p] for p in perm)),)


define("transpose", "data-movement", _transpose_rule, lambda x, perm: np.transpose(x, perm), attrs=("perm",),
       arity=1, doc="Permute dims: result dim i is operand dim ``perm[i]``.")


def _broadcast_rule(types, attrs, name):
    (x,) = types
    shape = tuple(attrs["shape"])
    out = broadcast_shapes(x.shape, shape)
    if out is not None and x.shape is not None and (len(out) != len(shape) or any(
            s is not None and o is not None and s != o for s, o in zip(shape, out))):
        raise ValueError(f"{name}: cannot broadcast shape {format_shape(x.shape)} to {format_shape(shape)}")
    return (TensorType(x.dtype, shape),)


define("broadcast_to", "elementwise", _broadcast_rule, lambda x, shape: np.broadcast_to(x, shape).copy(),
       attrs=("shape",), arity=1, doc="Broadcast the operand to ``shape`` (numpy rules).")


def _slice_dim(dim, triple):
    if dim is None:
        return None
    return len(range(*slice(*triple).indices(dim)))


def _slice_rule(types, attrs, name):
    (x,) = types
    slices = attrs["slices"]
    if x.shape is None:
        return (TensorType(x.dtype, None),)
    if len(slices) != x.rank:
        raise ValueError(f"{name}: {len(slices)} slices for shape {format_shape(x.shape)}")
    for t in slices:
        if t[2] == 0:
            raise ValueError(f"{name}: slice step cannot be zero")
    return (TensorType(x.dtype, tuple(_slice_dim(d, t) for d, t in zip(x.shape, slices))),)


define("slice", "data-movement", _slice_rule, lambda x, slices: x[tuple(slice(*t) for t in slices)].copy(),
       attrs=("slices",), arity=1,
       doc="Basic slicing: ``slices`` holds one Python ``(start, stop, step)`` per dim (entries may be None).")


def _concat_rule(types, attrs, name):
    dtype = _same_dtype(types, name)
    ranks = {t.rank for t in types if t.shape is not None}
    if not ranks:
        return (TensorType(dtype, None),)
    if len(ranks) > 1:
        raise ValueError(f"{name}: operands of different ranks: " + ", ".join(format_shape(t.shape) for t in types))
    rank = ranks.pop()
    axis = _norm_axis(attrs["axis"], rank, name)
    out = []
    for i in range(rank):
        dims = [t.shape[i] if t.shape is not None else None for t in types]
        if i == axis:
            out.append(None if None in dims else sum(dims))
            continue
        known = {d for d in dims if d is not None}
        if len(known) > 1:
            raise ValueError(f"{name}: dim {i} differs among shapes " +
                             ", ".join(format_shape(t.shape) for t in types))
        out.append(known.pop() if known else None)
    return (TensorType(dtype, tuple(out)),)


define("concat", "data-movement", _concat_rule, lambda *xs, axis: np.concatenate(xs, axis=axis), attrs=("axis",),
       doc="Join operands along ``axis``; other dims must match.")


def _gather_rule(types, attrs, name):
    params, indices = types
    _check_dtype(indices, (dt.int32, dt.int64), name, "indices")
    if params.shape is None or indices.shape is None:
        return (TensorType(params.dtype, None),)
    axis = _norm_axis(attrs["axis"], params.rank, name)
    return (TensorType(params.dtype, params.shape[:axis] + indices.shape + params.shape[axis + 1:]),)


def _gather_ref(params, indices, axis):
    n = params.shape[axis]
    bad = (indices < 0) | (indices >= n)
    if np.any(bad):
        raise IndexError(f"gather index {int(indices[bad].flat[0])} is out of range [0, {n})")
    return np.take(params, indices, axis=axis)


define("gather", "data-movement", _gather_rule, _gather_ref, attrs=("axis",), arity=2,
       doc="``params`` rows picked by ``indices`` along ``axis``; an index outside [0, n) is an error.")


def _scatter_slice_rule(types, attrs, name):
    (x,) = types
    shape = tuple(attrs["shape"])
    (expected,) = _slice_rule((TensorType(x.dtype, shape),), attrs, name)
    if x.shape is not None and expected.shape is not None and any(
            a is not None and b is not None and a != b for a, b in zip(x.shape, expected.shape)):
        raise ValueError(f"{name}: operand of shape {format_shape(x.shape)} does not fill the slices "
                         f"{list(attrs['slices'])} of shape {format_shape(shape)} ({format_shape(expected.shape)})")
    return (TensorType(x.dtype, shape),)


def _scatter_slice_ref(x, shape, slices):
    out = np.zeros(shape, x.dtype)
    out[tuple(slice(*t) for t in slices)] = x
    return out


define("scatter_slice", "data-movement", _scatter_slice_rule, _scatter_slice_ref, attrs=("shape", "slices"),
       arity=1, doc="Zeros of ``shape`` with the operand written where ``slices`` select (the adjoint of slice).")


def _scatter_add_rule(types, attrs, name):
    updates, indices = types
    _check_dtype(indices, (dt.int32, dt.int64), name, "indices")
    shape = tuple(attrs["shape"])
    axis = _norm_axis(attrs["axis"], len(shape), name)
    want = shape[:axis] + (indices.shape or ()) + shape[axis + 1:]
    if updates.shape is not None and indices.shape is not None and updates.shape != want:
        raise ValueError(f"{name}: updates of shape {format_shape(updates.shape)}, expected {format_shape(want)}")
    return (TensorType(updates.dtype, shape),)


def _scatter_add_ref(updates, indices, shape, axis):
    axis %= len(shape)
    n = shape[axis]
    bad = (indices < 0) | (indices >= n)
    if np.any(bad):
        raise IndexError(f"scatter_add index {int(indices[bad].flat[0])} is out of range [0, {n})")
    out = np.zeros(shape, updates.dtype)
    moved = np.moveaxis(out, axis, 0)
    upd = np.moveaxis(updates.reshape(shape[:axis] + (indices.size,) + shape[axis + 1:]), axis, 0)
    np.add.at(moved, indices.reshape(-1), upd)
    return out


define("scatter_add", "data-movement", _scatter_add_rule, _scatter_add_ref, attrs=("shape", "axis"), arity=2,
       doc="Zeros of ``shape`` plus each slice of ``updates`` added at its index along ``axis`` "
           "(the adjoint of gather; repeated indices add up).")



def _iota_rule(types, attrs, name):
    shape = tuple(attrs["shape"])
    _norm_axis(attrs["axis"], len(shape), name)
    return (TensorType(attrs["dtype"], shape),)


def _iota_ref(shape, axis, dtype):
    idx = np.arange(shape[axis]).reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return np.broadcast_to(idx, shape).astype(dt.as_dtype(dtype).np)


define("iota", "data-movement", _iota_rule, lambda shape, axis, dtype: _iota_ref(shape, axis, dtype),
       attrs=("shape", "axis", "dtype"), arity=0, doc="The index along ``axis`` at every position of ``shape``.")


def _constant_rule(types, attrs, name):
    value = attrs["value"]
    return (TensorType(dt.as_dtype(value.dtype), value.shape),)


define("constant", "data-movement", _constant_rule, lambda value: value, attrs=("value",), arity=0,
       doc="A literal tensor held in the ``value`` attribute.")

def _copy_rule(types, attrs, name):
    from fuseflow.ir.devices import DeviceSpec

    spec = DeviceSpec.parse(attrs["device"])  # a bad name is an error here, not at run time
    if spec.device_type is None:
        raise ValueError(f"{name}: the target device {attrs['device']!r} names no device type")
    return (types[0],)


define("copy_to_device", "data-movement", _copy_rule, lambda x, device: x.copy(), attrs=("device",), arity=1,
       doc="The operand, copied to ``device`` (e.g. ``/device:GPU:0``): the only op that reads a value on one "
           "device and defines it on another. The ``place`` pass inserts it; its gradient is the copy back.")

# ----------------------------------------------------------------------------- random numbers
# Counter-based: element i of a draw is a hash of (seed, seed2, counter, i), so a kernel can
# compute any element independently and the numpy reference gives the same bits.

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x):
    """The splitmix64 finaliser over uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return x ^ (x >> np.uint64(31))


def random_key(seed, seed2, counter):
    """One uint64 key per (op seeds, run counter)."""
    k = splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    k = splitmix64(k ^ np.uint64(seed2 & 0xFFFFFFFFFFFFFFFF))
    return splitmix64(k ^ np.uint64(int(counter) & 0xFFFFFFFFFFFFFFFF))


def uniform_bits(key, index):
    """A float64 in [0, 1) for each uint64 index."""
    h = splitmix64(key ^ splitmix64(index))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _normal_pair(key, index):
    u1 = uniform_bits(key, np.uint64(2) * index)
    u2 = uniform_bits(key, np.uint64(2) * index + np.uint64(1))
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def _random_ref(kind):
    def ref(counter, shape, dtype, seed, seed2):
        key = random_key(seed, seed2, counter)
        index = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.uint64)
        if kind == "uniform":
            out = uniform_bits(key, index)
        elif kind == "normal":
            out = _normal_pair(key, index)
        else:  # truncated normal: redraw (with a new round in the index) until |z| < 2
            out = _normal_pair(key, index)
            for rnd in range(1, 64):
                bad = np.abs(out) >= 2.0
                if not bad.any():
                    break
                out[bad] = _normal_pair(key, index[bad] + np.uint64(rnd) * np.uint64(1 << 40))
        return out.reshape(shape).astype(dt.as_dtype(dtype).np)

    return ref


def _random_rule(types, attrs, name):
    (counter,) = types
    _check_dtype(counter, (dt.int64,), name, "counter")
    _check_dtype(TensorType(attrs["dtype"], ()), dt.FLOATS, name, "dtype")
    return (TensorType(attrs["dtype"], tuple(attrs["shape"])),)


for _kind in ("uniform", "normal", "truncated_normal"):
    define(f"random_{_kind}", "opaque", _random_rule, _random_ref(_kind),
           attrs=("shape", "dtype", "seed", "seed2"), arity=1, stateful=True,
           doc=f"Draws {_kind.replace('_', ' ')} numbers; the i64 operand is the run counter of this op.")

# ----------------------------------------------------------------------------- control


def _no_results(types, attrs, name):
    return ()


define("return", "control", _no_results, None, doc="Ends a function; operands are its results.")
define("yield", "control", _no_results, None, doc="Ends a region body; operands are the region's results.")
define("stop_gradient", "elementwise",
       lambda types, attrs, name: (types[0],), lambda x: x.copy(), arity=1,
       doc="The operand unchanged; autodiff treats it as a constant.")


def _gradients_rule(types, attrs, name):
    ny, nx = attrs["num_ys"], attrs["num_xs"]
    if len(types) not in (ny + nx, 2 * ny + nx):
        raise ValueError(f"{name}: {len(types)} operands for {ny} ys and {nx} xs")
    for t in types[:ny + nx]:
        _check_dtype(t, dt.FLOATS, name)
    return tuple(types[ny:ny + nx])


define("gradients", "opaque", _gradients_rule, None, attrs=("num_ys", "num_xs"),
       doc="``gradients(ys..., xs..., [grad_ys...])``: d(sum ys . grad_ys)/d xs through the ops of the enclosing "
           "function; the autodiff pass expands it into ordinary ops (reverse mode).")


def _jvp_rule(types, attrs, name):
    ny, nx = attrs["num_ys"], attrs["num_xs"]
    if len(types) != ny + 2 * nx:
        raise ValueError(f"{name}: {len(types)} operands for {ny} ys, {nx} xs and {nx} tangents")
    for x, t in zip(types[ny:ny + nx], types[ny + nx:]):
        if x != t:
            raise ValueError(f"{name}: tangent {t} does not match its input {x}")
    return tuple(types[:ny])


define("jvp", "opaque", _jvp_rule, None, attrs=("num_ys", "num_xs"),
       doc="``jvp(ys..., xs..., tangents...)``: the directional derivatives of ys along the tangents of xs; "
           "the autodiff pass expands it into ordinary ops (forward mode).")
define("fused", "control", None, None,
       doc="One kernel: the body region computes the results from the operands (block arguments).")
