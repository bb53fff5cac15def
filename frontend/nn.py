"""``tf.nn``: activations, softmax and bias_add, as compositions of IR primitives."""

from __future__ import annotations

import numpy as np

from fuseflow.frontend import math_ops as m
from fuseflow.frontend.core_ops import convert_to_tensor, make_op
from fuseflow.frontend.math_ops import normalize_axes, rank_of
from fuseflow.ir.types import format_shape


def _const_like(b, v, value):
    return b.constant(np.array(value, dtype=v.dtype.np))


def _shifted(b, v, axis):
    """``x - max(x, axis)``: softmax's stable form; returns it with the reduced axes."""
    axes = normalize_axes(axis, rank_of(v), "softmax")
    return b.op("sub", v, b.op("reduce_max", v, axes=axes, keepdims=True)), axes


def lower_softmax(b, v, axis=-1):
    z, axes = _shifted(b, v, axis)
    e = b.op("exp", z)
    return b.op("div", e, b.op("reduce_sum", e, axes=axes, keepdims=True))


def lower_log_softmax(b, v, axis=-1):
    z, axes = _shifted(b, v, axis)
    return b.op("sub", z, b.op("log", b.op("reduce_sum", b.op("exp", z), axes=axes, keepdims=True)))


def _float_only(t, what):
    if not t.dtype.is_floating:
        raise TypeError(f"{what} needs a floating-point tensor, got {t.dtype.name} ('{t.name}')")


def softmax(logits, axis=None, name=None, dim=None):
    """``exp(x - max) / sum(exp(x - max))`` along `axis` (default: the last)."""
    x = convert_to_tensor(logits)
    _float_only(x, "softmax")
    axis = -1 if axis is None and dim is None else (axis if axis is not None else dim)
    return make_op("Softmax", [x], lambda b, v: lower_softmax(b, v, axis), name=name)


def log_softmax(logits, axis=None, name=None, dim=None):
    """``x - max - log(sum(exp(x - max)))`` along `axis` (default: the last)."""
    x = convert_to_tensor(logits)
    _float_only(x, "log_softmax")
    axis = -1 if axis is None and dim is None else (axis if axis is not None else dim)
    return make_op("LogSoftmax", [x], lambda b, v: lower_log_softmax(b, v, axis), name=name)


def relu(features, name=None):
    """``max(x, 0)``."""
    x = convert_to_tensor(features)
    return make_op("Relu", [x], lambda b, v: b.op("maximum", v, _const_like(b, v, 0)), name=name)


def relu6(features, name=None):
    """``min(max(x, 0), 6)``."""
    x = convert_to_tensor(features)
    return make_op("Relu6", [x], lambda b, v: b.op("minimum", b.op("maximum", v, _const_like(b, v, 0)),
                                                   _const_like(b, v, 6)), name=name)


def elu(features, name=None):
    """``x`` where positive, else ``exp(x) - 1``."""
    x = convert_to_tensor(features)
    _float_only(x, "elu")

    def lower(b, v):
        neg = b.op("sub", b.op("exp", b.op("minimum", v, _const_like(b, v, 0))), _const_like(b, v, 1))
        return b.op("select", b.op("greater", v, _const_like(b, v, 0)), v, neg)

    return make_op("Elu", [x], lower, name=name)


def bias_add(value, bias, data_format=None, name=None):
    """``value + bias`` where `bias` is 1-D and matches the last dim of `value`."""
    x, bvec = m.binary_inputs(value, bias)

    def lower(b, v, w):
        if w.type.shape is not None and len(w.type.shape) != 1:
            raise ValueError(f"bias must be 1-D, got shape {format_shape(w.type.shape)}")
        if v.type.shape is not None and len(v.type.shape) < 2:
            raise ValueError(f"value must have rank >= 2, got shape {format_shape(v.type.shape)}")
        return b.op("add", v, w)

    return make_op("BiasAdd", [x, bvec], lower, name=name)


sigmoid = m.sigmoid
tanh = m.tanh


# ----------------------------------------------------------------------------- losses and dropout


def l2_loss(t, name=None):
    """``sum(t ** 2) / 2``."""
    x = convert_to_tensor(t)
    return make_op("L2Loss", [x], lambda b, v: b.op("mul", b.op("reduce_sum", b.op("mul", v, v),
                                                                axes=tuple(range(rank_of(v))), keepdims=False),
                                                    _const_like(b, v, 0.5)), name=name)


def _cross_entropy(b, labels, logits, axis):
    log_p = lower_log_softmax(b, logits, axis)
    axes = normalize_axes(axis, rank_of(logits), "softmax_cross_entropy_with_logits")
    return b.op("neg", b.op("reduce_sum", b.op("mul", labels, log_p), axes=axes, keepdims=False))


def softmax_cross_entropy_with_logits_v2(_sentinel=None, labels=None, logits=None, dim=-1, name=None, axis=None):
    """``-sum(labels * log_softmax(logits))`` along `axis`; stable for large logits."""
    if _sentinel is not None:
        raise ValueError("call softmax_cross_entropy_with_logits with named arguments (labels=..., logits=...)")
    z = convert_to_tensor(logits)
    y = convert_to_tensor(labels, preferred_dtype=z.dtype)
    axis = dim if axis is None else axis
    return make_op("SoftmaxCrossEntropyWithLogits", [y, z], lambda b, lv, zv: _cross_entropy(b, lv, zv, axis),
                   name=name)


def softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, dim=-1, name=None, axis=None):
    """TF1's v1 loss: as v2, but no gradient flows into `labels`."""
    from fuseflow.frontend.gradients import stop_gradient

    if _sentinel is not None:
        raise ValueError("call softmax_cross_entropy_with_logits with named arguments (labels=..., logits=...)")
    return softmax_cross_entropy_with_logits_v2(labels=stop_gradient(labels), logits=logits, dim=dim, name=name,
                                                axis=axis)


def sparse_softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, name=None):
    """``-log_softmax(logits)[label]`` per row; `labels` are class indices."""
    from fuseflow.frontend.array_ops import one_hot

    if _sentinel is not None:
        raise ValueError("call sparse_softmax_cross_entropy_with_logits with named arguments")
    z = convert_to_tensor(logits)
    idx = convert_to_tensor(labels)
    depth = z.type.shape[-1] if z.type.shape else None
    if depth is None:
        raise ValueError(f"sparse_softmax_cross_entropy_with_logits: logits '{z.name}' need a known last dim")
    return softmax_cross_entropy_with_logits_v2(labels=one_hot(idx, depth, dtype=z.dtype), logits=z, name=name)


def dropout(x, keep_prob=None, noise_shape=None, seed=None, name=None, rate=None):
    """Zeroes each element with probability ``1 - keep_prob`` and scales the rest by ``1/keep_prob``."""
    from fuseflow.frontend.random_ops import random_uniform

    x = convert_to_tensor(x)
    if keep_prob is None:
        keep_prob = 1 - rate if not hasattr(rate, "op") else 1 - convert_to_tensor(rate, dtype=x.dtype)
    if isinstance(keep_prob, (int, float)):
        if not 0 < keep_prob <= 1:
            raise ValueError(f"dropout: keep_prob must be in (0, 1], got {keep_prob}")
        if keep_prob == 1:
            return x
    keep = convert_to_tensor(keep_prob, dtype=x.dtype)
    shape = noise_shape if noise_shape is not None else x.type.shape
    if shape is None or None in tuple(shape):
        raise ValueError(f"dropout: '{x.name}' needs a fully known shape (or pass noise_shape)")
    mask = m.floor(keep + random_uniform(list(shape), dtype=x.dtype, seed=seed))
    return m.multiply(m.truediv(x, keep), mask, name=name)
