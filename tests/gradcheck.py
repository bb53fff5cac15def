"""Gradient-check harness: IR ``gradients``/``jvp`` ops against central finite differences.

A `Spec` describes one differentiable op: its `Case`s (operand shapes, constant
operands, attributes), an input sampler that keeps the op smooth at the sample
points, and tolerances. For a case, `check_case` builds in float64

- ``y = op(x...)`` (the forward function, for finite differences),
- ``loss = reduce_sum(y * w)`` with a fixed random weighting ``w`` and
  ``gradients(loss, xs...)`` (reverse mode),
- ``jvp(y, xs..., tangents...)`` (forward mode),

expands them with the autodiff pass, verifies the IR, runs it on the reference
interpreter and compares: the gradient with the finite-difference gradient of
the loss (element by element), the JVP with the finite-difference directional
derivative of ``y``, and both modes with each other (``<w, J t> == <J^T w, t>``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fuseflow.ir import dtypes as dt
from fuseflow.ir import interp
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Module, walk_ops
from fuseflow.ir.types import TensorType
from fuseflow.ir.verifier import verify
from fuseflow.passes.autodiff import autodiff

F64 = dt.float64


@dataclass(frozen=True)
class Case:
    """One operand list: a tuple entry is the shape of a differentiated float64 input, an array a constant.

    `values` fixes the inputs instead of sampling them (zeros of a product, ties, ...); a non-empty
    `xfail` names a known bug, and the test of the case is then expected to fail.
    """

    operands: tuple
    attrs: dict = field(default_factory=dict)
    values: tuple | None = None
    label: str = ""
    xfail: str = ""

    @property
    def input_shapes(self) -> list[tuple]:
        return [o for o in self.operands if isinstance(o, tuple)]

    def describe(self) -> str:
        parts = [str(o) if isinstance(o, tuple) else f"const{o.shape}" for o in self.operands]
        parts += [f"{k}={v}" for k, v in sorted(self.attrs.items()) if k not in ("shape", "slices")]
        return self.label or "&".join(parts).replace(" ", "")


def case(*operands, values=None, label="", xfail="", **attrs) -> Case:
    return Case(tuple(o if isinstance(o, np.ndarray) else tuple(o) for o in operands), attrs,
                None if values is None else tuple(np.asarray(v, np.float64) for v in values), label, xfail)


def uniform(lo=-2.0, hi=2.0):
    """Inputs drawn uniformly from [lo, hi]."""
    return lambda rng, shapes: [rng.uniform(lo, hi, s) for s in shapes]


UNIFORM = uniform()


def away_from_zero(lo=0.3, hi=2.0):
    """Inputs with lo <= |x| <= hi and random signs."""
    return lambda rng, shapes: [rng.uniform(lo, hi, s) * rng.choice([-1.0, 1.0], s) for s in shapes]


def distinct(rng, shapes):
    """Inputs whose elements are at least 0.3 apart (no ties for max/min)."""
    out = []
    for s in shapes:
        n = int(np.prod(s, dtype=np.int64))
        out.append((rng.permutation(n) * 0.3 - 0.15 * n + rng.uniform(0, 0.05, n)).reshape(s))
    return out


def per_operand(*samplers):
    """A sampler that draws operand i with ``samplers[i]``."""
    return lambda rng, shapes: [s(rng, [shape])[0] for s, shape in zip(samplers, shapes)]


def default_build(name):
    return lambda b, *operands, **attrs: b.op(name, *operands, **attrs)


@dataclass
class Spec:
    """The gradient-check spec of one op: cases, a smooth sampler and tolerances.

    `valid(*operands)` (inputs and constants, in operand order) rejects samples near a
    non-smooth point; `build(b, *operands, **attrs)` overrides the plain op (e.g. a cast round trip).
    """

    op: str
    cases: list
    sample: Callable = UNIFORM
    valid: Callable | None = None
    build: Callable | None = None
    eps: float = 1e-6
    rtol: float = 1e-5
    atol: float = 1e-7
    modes_rtol: float = 1e-9  # <w, J t> against <J^T w, t>: exact up to rounding unless the op rounds

    def __post_init__(self):
        if self.build is None:
            self.build = default_build(self.op)

    def params(self):
        """(spec, case) pairs with pytest ids."""
        return [(self, c, f"{self.op}[{c.describe()}]") for c in self.cases]


# ----------------------------------------------------------------------------- building modules


def _apply(spec: Spec, c: Case, b: Builder, xs) -> object:
    it = iter(xs)
    operands = [next(it) if isinstance(o, tuple) else b.constant(o) for o in c.operands]
    return spec.build(b, *operands, **c.attrs)


def _as_tuple(out) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def forward_module(spec: Spec, c: Case) -> Module:
    b = Builder([TensorType(F64, s) for s in c.input_shapes])
    return Module([b.finish([_apply(spec, c, b, b.args)])])


def weighted_sum(b: Builder, y, w):
    """``reduce_sum(y * w)`` over all dims: a scalar loss (`w` an array or a value)."""
    prod = b.op("mul", y, b.constant(w) if isinstance(w, np.ndarray) else w)
    return b.op("reduce_sum", prod, axes=tuple(range(len(prod.type.shape))), keepdims=False)


def gradient_module(spec: Spec, c: Case, w: np.ndarray) -> Module:
    """``(loss, d loss/d x...)`` before autodiff."""
    b = Builder([TensorType(F64, s) for s in c.input_shapes])
    xs = b.args
    loss = weighted_sum(b, _apply(spec, c, b, xs), w)
    grads = _as_tuple(b.op("gradients", loss, *xs, num_ys=1, num_xs=len(xs)))
    return Module([b.finish([loss, *grads])])


def jvp_module(spec: Spec, c: Case) -> Module:
    """``(y, J t)`` over args ``(x..., t...)`` before autodiff."""
    shapes = c.input_shapes
    b = Builder([TensorType(F64, s) for s in shapes + shapes])
    xs, ts = b.args[:len(shapes)], b.args[len(shapes):]
    y = _apply(spec, c, b, xs)
    return Module([b.finish([y, b.op("jvp", y, *xs, *ts, num_ys=1, num_xs=len(xs))])])


def expand(module: Module) -> Module:
    """The autodiff pass, checked: the output verifies and holds no derivative request."""
    out = autodiff(module)
    verify(out)
    left = [op.name for fn in out.functions.values() for op in walk_ops(fn.body)
            if op.name in ("gradients", "jvp", "stop_gradient")]
    assert not left, f"autodiff left {left}"
    return out


# ----------------------------------------------------------------------------- numerics


def rng_for(key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(key.encode()))


def sample_inputs(spec: Spec, c: Case, rng: np.random.Generator) -> list[np.ndarray]:
    if c.values is not None:
        return [v.copy() for v in c.values]
    for _ in range(1000):
        xs = [np.asarray(x, np.float64) for x in spec.sample(rng, c.input_shapes)]
        if spec.valid is None or spec.valid(*_with_constants(c, xs)):
            return xs
    raise AssertionError(f"{spec.op}: the sampler found no valid point for {c.describe()}")


def _with_constants(c: Case, xs):
    it = iter(xs)
    return [next(it) if isinstance(o, tuple) else o for o in c.operands]


def numerical_gradient(f: Callable, xs: list[np.ndarray], eps: float) -> list[np.ndarray]:
    """Central differences of the scalar ``f(*xs)``, element by element."""
    grads = []
    for i, x in enumerate(xs):
        g = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            hi = [a.copy() for a in xs]
            lo = [a.copy() for a in xs]
            hi[i][j] += eps
            lo[i][j] -= eps
            g[j] = (f(*hi) - f(*lo)) / (2 * eps)
        grads.append(g)
    return grads


def numerical_jvp(f: Callable, xs, ts, eps: float) -> np.ndarray:
    """Central difference of ``f`` along the tangents."""
    hi = f(*[x + eps * t for x, t in zip(xs, ts)])
    lo = f(*[x - eps * t for x, t in zip(xs, ts)])
    return (hi - lo) / (2 * eps)


def check_case(spec: Spec, c: Case) -> None:
    """Reverse and forward mode of `spec` on `c` against finite differences and each other."""
    rng = rng_for(f"{spec.op}/{c.describe()}")
    xs = sample_inputs(spec, c, rng)
    fwd = forward_module(spec, c)
    (y,) = interp.run(fwd, *xs)
    w = rng.normal(size=y.shape)

    def f(*args):
        return interp.run(fwd, *args)[0]

    tol = {"rtol": spec.rtol, "atol": spec.atol}
    loss, *grads = interp.run(expand(gradient_module(spec, c, w)), *xs)
    np.testing.assert_allclose(loss, np.sum(y * w), rtol=1e-12, atol=1e-12)
    expected = numerical_gradient(lambda *a: np.sum(f(*a) * w), xs, spec.eps)
    for i, (g, e, x) in enumerate(zip(grads, expected, xs)):
        assert g.shape == x.shape and g.dtype == np.float64, f"gradient {i}: {g.dtype}{g.shape} for {x.shape}"
        np.testing.assert_allclose(g, e, **tol, err_msg=f"{spec.op}: gradient of input {i}")

    ts = [rng.normal(size=x.shape) for x in xs]
    y2, jt = interp.run(expand(jvp_module(spec, c)), *xs, *ts)
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
    assert jt.shape == y.shape, f"jvp shape {jt.shape} for output {y.shape}"
    np.testing.assert_allclose(jt, numerical_jvp(f, xs, ts, spec.eps), **tol, err_msg=f"{spec.op}: jvp")
    # The two modes are transposes of one linear map.
    forward = np.sum(w * jt)
    reverse = sum(np.sum(g * t) for g, t in zip(grads, ts))
    np.testing.assert_allclose(forward, reverse, rtol=spec.modes_rtol, atol=1e-11, err_msg=f"{spec.op}: <w, Jt> != <J^T w, t>")
