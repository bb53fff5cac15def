"""The CUDA side of the scalar emitters' contract, and the transfers between host and device.

Generated kernels call helpers through ``_h`` and transcendental functions through ``_m``
(see `fuseflow.codegen.scalar`). On the CPU those are `fuseflow.codegen.helpers` and
`fuseflow.codegen.mathlib`; here they are CUDA device functions of the same names:

- ``_h``: every helper of `helpers`, recompiled from its Python source as a device function
  (one source for both targets; the helpers it calls, through globals or closures, are
  retargeted too);
- ``_m``: ``exp_f32``, ``log_f64``... over CUDA's own libdevice functions (``math.exp`` on a
  float32 is ``expf``). mathlib's branch-free polynomials exist to let LLVM vectorise CPU
  loops; a GPU thread is scalar and libdevice is accurate to 1-2 ulp;
- ``np``: numpy's scalar types and constants, with the functions the emitters and helpers call
  (``np.sqrt``, ``np.floor``, ``np.isnan``...) mapped to ``math``/libdevice, since numba's CUDA
  target has no numpy ufuncs (`device_numpy`).

Under the simulator kernels are Python: ``np`` is numpy itself (numpy's inf/nan semantics, where
``math.exp`` would raise OverflowError) and device functions are plain functions.

``numba.cuda`` is imported on first use only, so ``import fuseflow`` never pays for it.
`TRANSFERS` counts host<->device copies (tests use it to prove variables stay resident).
"""

from __future__ import annotations

import os
import types
from functools import cache

import numpy as np

from fuseflow.codegen import helpers

TRANSFERS = {"to_device": 0, "to_host": 0}


@cache
def cuda():
    """The ``numba.cuda`` module (imported here, once)."""
    from numba import cuda as numba_cuda

    return numba_cuda


def simulated() -> bool:
    """True under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``): kernels run as Python threads."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")


def is_device_array(x) -> bool:
    """True for a numba CUDA device array (real or simulated)."""
    return hasattr(x, "copy_to_host")


def to_device(x):
    """`x` as a device array: numpy arrays are copied over (and counted), device arrays kept."""
    if is_device_array(x):
        return x
    TRANSFERS["to_device"] += 1
    return cuda().to_device(np.ascontiguousarray(x) if np.ndim(x) else np.asarray(x))


def to_host(x) -> np.ndarray:
    """`x` as a numpy array: device arrays are copied back (and counted), numpy arrays kept."""
    if not is_device_array(x):
        return x
    TRANSFERS["to_host"] += 1
    return x.copy_to_host()


def device_empty(shape, dtype):
    """An uninitialised device array."""
    return cuda().device_array(tuple(shape), dtype)


def flat(x):
    """`x` viewed as 1-d (kernels index 0-d values as ``x[0]``): the same memory, no copy."""
    return x if x.ndim == 1 else x.reshape(x.size)


def reshape(x, shape):
    """`x` viewed with a new shape; a 0-d result is a one-element copy (device views to 0-d are
    unreliable across numba versions and the simulator)."""
    if tuple(shape) == ():
        out = device_empty((), x.dtype)
        flat(out).copy_to_device(flat(x))
        return out
    return x.reshape(tuple(shape))


def device_copy(x):
    """A new device array holding `x`'s elements (a device-to-device copy)."""
    out = device_empty(x.shape, x.dtype)
    flat(out).copy_to_device(flat(x))
    return out


# ----------------------------------------------------------------------------- _h: helpers as device functions


def _is_jitted(obj) -> bool:
    return hasattr(obj, "py_func") and isinstance(obj.py_func, types.FunctionType)


def _retarget(fn, namespace: dict, memo: dict):
    """A device function with `fn`'s Python code, its jitted callees retargeted through `namespace`."""
    py = fn.py_func
    if id(py) in memo:
        return memo[id(py)]
    closure = None
    if py.__closure__:
        closure = tuple(types.CellType(_retarget(c.cell_contents, namespace, memo) if _is_jitted(c.cell_contents)
                                       else c.cell_contents) for c in py.__closure__)
    clone = types.FunctionType(py.__code__, namespace, py.__name__, py.__defaults__, closure)
    memo[id(py)] = device = device_function(clone)
    return device


def device_function(fn):
    """`fn` as a CUDA device function. Under the simulator a device function is its Python code
    anyway; calling that directly skips the simulator's per-call swap of the function's globals."""
    return fn if simulated() else cuda().jit(device=True)(fn)


def _module(name: str, attrs: dict) -> types.ModuleType:
    # A module, not a namespace object: numba resolves ``_h.name`` in a kernel only on modules.
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


# numpy functions of generated code -> their CUDA versions. floor/ceil/rint go through libdevice's
# float64 functions (exact for float32 too; math.floor would return an int).
_NUMPY_ON_GPU = {
    "sqrt": "math.sqrt", "exp": "math.exp", "expm1": "math.expm1", "log": "math.log", "log1p": "math.log1p", "tanh": "math.tanh",
    "sin": "math.sin", "cos": "math.cos", "isnan": "math.isnan", "fmod": "math.fmod",
    "copysign": "math.copysign", "power": "math.pow", "floor": "libdevice.floor", "ceil": "libdevice.ceil",
    "rint": "libdevice.rint",
}


@cache
def device_numpy() -> types.ModuleType:
    """``np`` for CUDA kernels: numpy itself under the simulator; on a GPU, numpy's types and constants
    with its functions replaced by `_NUMPY_ON_GPU`."""
    if simulated():
        return np
    import math

    from numba.cuda import libdevice

    attrs = {k: v for k, v in vars(np).items() if not k.startswith("__")}
    libs = {"math": math, "libdevice": libdevice}
    for name, target in _NUMPY_ON_GPU.items():
        lib, _, fn = target.partition(".")
        attrs[name] = getattr(libs[lib], fn)
    return _module("fuseflow_cuda_numpy", attrs)


def _python_minmax() -> dict:
    """``max``/``min`` of two scalars with Python's semantics (the first argument unless the second is
    strictly beyond it): numba's CUDA target types the builtins' two-scalar form wrongly."""

    def max2(a, b):
        return b if b > a else a  # noqa: FURB136  (the builtin is what this replaces)

    def min2(a, b):
        return b if b < a else a  # noqa: FURB136

    return {"max": device_function(max2), "min": device_function(min2)}


@cache
def device_helpers() -> types.ModuleType:
    """``_h`` for CUDA kernels: every jitted function of `helpers` as a device function."""
    namespace = dict(vars(helpers))  # globals of the clones: filled before any kernel compiles
    namespace["np"] = device_numpy()
    minmax = _python_minmax()
    # (the CPU's maxnum/minnum intrinsics: the reductions track NaN beside them, so plain compares do)
    namespace.update(minmax, _maxnum=minmax["max"], _minnum=minmax["min"])
    memo: dict = {}
    for name, obj in vars(helpers).items():
        if _is_jitted(obj):
            namespace[name] = _retarget(obj, namespace, memo)
    return _module("fuseflow_cuda_helpers", {k: v for k, v in namespace.items() if not k.startswith("__")})


# ----------------------------------------------------------------------------- _m: libdevice math

# Through `device_numpy`: libdevice on a GPU, numpy's inf/nan semantics under the simulator.
_MATH = {
    "exp": "np.exp(x)", "expm1": "np.expm1(x)", "log": "np.log(x)", "log1p": "np.log1p(x)", "tanh": "np.tanh(x)",
    "sin": "np.sin(x)", "cos": "np.cos(x)", "sigmoid": "one / (one + np.exp(-x))", "erf": "math.erf(x)",
}


@cache
def device_math() -> types.ModuleType:
    """``_m`` for CUDA kernels: ``{name}_f32`` / ``{name}_f64`` for every function mathlib provides."""
    import math

    out = {}
    for name, expr in _MATH.items():
        for suffix, ftype in (("f32", "float32"), ("f64", "float64")):
            source = f"def {name}_{suffix}(x):\n    one = np.{ftype}(1.0)\n    return np.{ftype}({expr})\n"
            namespace = {"np": device_numpy(), "math": math}
            exec(compile(source, f"<fuseflow-cuda-math-{name}_{suffix}>", "exec"), namespace)  # noqa: S102
            out[f"{name}_{suffix}"] = device_function(namespace[f"{name}_{suffix}"])
    return _module("fuseflow_cuda_math", out)
