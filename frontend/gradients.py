"""``tf.gradients``, ``tf.stop_gradient`` and forward-mode ``jvp`` on graphs.

A gradient request is one graph op whose lowering emits an IR ``gradients`` (or
``jvp``) op; the autodiff pass expands it into ordinary ops, so
``fuseflow ir --before autodiff`` shows the request and ``--after autodiff``
the derivative graph. An x that the ys do not depend on (or only through
``stop_gradient``, integer values or piecewise-constant ops such as ``floor``),
or that is not floating point, gets ``None``, as in TF.
"""

from __future__ import annotations

from fuseflow.frontend.core_ops import convert_to_tensor, make_op
from fuseflow.frontend.graph import Tensor


def stop_gradient(input, name=None):
    """The same value; derivatives do not flow through it."""
    x = convert_to_tensor(input)
    return make_op("StopGradient", [x], lambda b, v: b.op("stop_gradient", v), name=name)


def _as_list(values):
    return list(values) if isinstance(values, (list, tuple)) else [values]


# Graph ops whose float results carry no derivative to their inputs (piecewise constant or random).
NOT_DIFFERENTIABLE = {"StopGradient", "Floor", "Ceil", "Round", "Sign", "FloorDiv", "RandomUniform",
                      "RandomStandardNormal", "TruncatedNormal"}


def _reachable(ys) -> set:
    """Tensors the ys depend on through differentiable edges: float values, no op that cuts derivatives."""
    seen, stack = set(), list(ys)
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t.dtype.is_floating and t.op.type not in NOT_DIFFERENTIABLE:
            stack.extend(t.op.inputs)
    return seen


def gradients(ys, xs, grad_ys=None, name="gradients", colocate_gradients_with_ops=False,
              gate_gradients=False, aggregation_method=None, stop_gradients=None):
    """d(sum of ys)/d xs as a list with one tensor (or None) per x; `grad_ys` weight the ys."""
    ys = [convert_to_tensor(y) for y in _as_list(ys)]
    xs = [convert_to_tensor(x) for x in _as_list(xs)]
    if stop_gradients:
        raise NotImplementedError("gradients(stop_gradients=...) is not supported; use tf.stop_gradient")
    weights = [] if grad_ys is None else [convert_to_tensor(g, dtype=y.dtype) for g, y in
                                          zip(_as_list(grad_ys), ys)]
    reach = _reachable(ys)
    wanted = [x for x in xs if x in reach and x.dtype.is_floating]
    if not wanted:
        return [None] * len(xs)
    ny, nx = len(ys), len(wanted)

    def lower(b, *values):
        values = list(values)
        if hasattr(b, "variable_read_by"):  # a session run: differentiate at the values the ys read
            for i, x in enumerate(wanted):
                if getattr(x, "variable", None) is not None:
                    values[ny + i] = b.variable_read_by(x.variable, values[:ny])
        return b.op("gradients", *values, num_ys=ny, num_xs=nx)

    out = make_op("Gradients", ys + wanted + weights, lower, name=name)
    out = out if isinstance(out, tuple) else (out,)
    by_x = dict(zip(wanted, out))
    return [by_x.get(x) for x in xs]


def jvp(ys, xs, tangents, name="jvp"):
    """Forward mode: the derivatives of `ys` along `tangents` (one per x), as tensors."""
    single = isinstance(ys, Tensor) or not isinstance(ys, (list, tuple))
    ys = [convert_to_tensor(y) for y in _as_list(ys)]
    xs = [convert_to_tensor(x) for x in _as_list(xs)]
    tangents = [convert_to_tensor(t, dtype=x.dtype) for t, x in zip(_as_list(tangents), xs)]
    ny, nx = len(ys), len(xs)

    def lower(b, *values):
        values = list(values)
        if hasattr(b, "variable_read_by"):  # as for gradients: at the values the ys read
            for i, x in enumerate(xs):
                if getattr(x, "variable", None) is not None:
                    values[ny + i] = b.variable_read_by(x.variable, values[:ny])
        return b.op("jvp", *values, num_ys=ny, num_xs=nx)

    out = make_op("Jvp", ys + xs + tangents, lower, name=name)
    out = list(out) if isinstance(out, tuple) else [out]
    return out[0] if single else out
