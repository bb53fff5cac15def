"""``@fuseflow.jit``: compiles a Python function of arrays by tracing it into the graph IR.

The first call with a new *signature* (each dynamic argument's dtype, rank and which of its dims
are 1, plus the values of the static arguments) calls the Python function once with symbolic
tensors: placeholders whose other dims are unknown. The function may use the TF1 API or plain
numpy (`fuseflow.frontend.numpy_api`). Calls then run the traced graph through the same path as
`Session.run`: lowered for the call's concrete shapes, optimised, fused and compiled. A new size
under a known signature does not trace again and compiles no kernel (kernels specialise on rank and
broadcast pattern, not sizes): it only plans buffers for the new shapes.

Python numbers passed as arguments are *weak*, as in numpy: ``f(x32, 2.0)`` computes in float32.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import numpy as np

import fuseflow.frontend.numpy_api  # noqa: F401  (numpy's protocols on tensors)
from fuseflow.codegen.source import KERNEL_STATS
from fuseflow.frontend.core_ops import constant, placeholder
from fuseflow.frontend.graph import Graph, Tensor
from fuseflow.frontend.lowering import lower as lower_graph
from fuseflow.ir import dtypes as dt
from fuseflow.ir.devices import DeviceSpec
from fuseflow.ir.printer import print_module
from fuseflow.ir.types import TensorType, format_shape
from fuseflow.passes.manager import PassManager
from fuseflow.runtime import devices
from fuseflow.session import Session, flatten

_PYTHON_DTYPES = {bool: dt.bool_, int: dt.int64, float: dt.float64}


@dataclass
class CacheInfo:
    """How much a jitted function compiled.

    ``traces``: calls of the Python function (one per new signature). ``specializations``: traced
    graphs lowered, optimised and planned for a new set of concrete shapes. ``kernels_compiled``:
    native kernels those compiled (a new batch size compiles none), ``kernels_loaded``: those found
    in the on-disk kernel cache instead. ``last_reason``: why the last trace or specialization
    happened.
    """

    traces: int = 0
    specializations: int = 0
    kernels_compiled: int = 0
    kernels_loaded: int = 0
    last_reason: str = ""


def _arg_type(x) -> tuple[dt.DType, tuple, bool]:
    """(dtype, shape, weak) of a dynamic argument: an array, numpy scalar or Python number."""
    if isinstance(x, TensorType):  # a shape spec given to `lower`; dims may be None
        return x.dtype, x.shape, False
    if type(x) in _PYTHON_DTYPES:
        return _PYTHON_DTYPES[type(x)], (), True
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"a jitted function takes arrays and numbers; got {type(x).__name__} of dtype {arr.dtype}")
    return dt.as_dtype(arr.dtype), arr.shape, False


def _signature_part(x) -> tuple:
    """What a trace depends on: dtype, weakness, and per dim whether it is 1 (else any size)."""
    dtype, shape, weak = _arg_type(x)
    return dtype.name, weak, tuple(d == 1 for d in shape)


def _flatten_out(out, fetches: list):
    """Appends the tensors of a nested output to `fetches`; returns the function rebuilding it from values."""

    def leaf(x):
        if hasattr(x, "_as_graph_element"):
            x = x._as_graph_element()
        if isinstance(x, Tensor):
            index = len(fetches)
            fetches.append(x)
            return lambda vals: vals[index]
        value = None if x is None else np.asarray(x)  # a value that does not depend on the arguments
        return lambda vals: value

    return flatten(out, leaf)


class _Trace:
    """The graph one signature traced to, and the private session that runs it (and holds its random state)."""

    def __init__(self, fun, args, static: frozenset, device=None) -> None:
        self.graph = Graph()
        self.graph.numpy_semantics = True
        self.dynamic = [i for i in range(len(args)) if i not in static]
        call_args = list(args)
        # ops are placed as in a TF1 graph: `device` is a hard request (no soft fallback), and without
        # one each op goes to the GPU when one is present and the op has a GPU kernel
        with self.graph.as_default(), self.graph.device(device):
            self.feeds = []
            for i in self.dynamic:
                dtype, shape, weak = _arg_type(args[i])
                ph = placeholder(dtype, [1 if d == 1 else None for d in shape], name=f"arg{i}")
                ph.weak = weak
                self.feeds.append(ph)
                call_args[i] = ph
            out = fun(*call_args)
        self.fetches: list = []
        self.rebuild = _flatten_out(out, self.fetches)
        if not self.fetches:  # nothing depends on the arguments: still run a (trivial) graph
            with self.graph.as_default():
                self.fetches.append(constant(0))
        self.session = Session(graph=self.graph)

    def arrays(self, args) -> list:
        """The dynamic arguments as arrays of the placeholders' dtypes (kernels copy strided ones themselves)."""
        return [x if type(x) is np.ndarray else np.asarray(x, dtype=ph.dtype.np)
                for ph, x in zip(self.feeds, [args[i] for i in self.dynamic])]


def _runner(trace: _Trace, compiled, args):
    """The function that runs a compiled specialization on a call's arguments.

    In the common case (every argument an array, as the cache key proves for later calls; no state;
    no scalar result to unwrap) it is the executable's run and the output's rebuild, nothing else:
    this is the whole per-call cost of a small jitted function besides its kernels.
    """
    rebuild, execute = trace.rebuild, trace.session.execute
    arrays_only = len(trace.dynamic) == len(args) and all(type(x) is np.ndarray for x in args)
    if arrays_only and compiled.plain and not compiled.any_unwrap:
        run = compiled.executable.run
        return lambda args: rebuild(run(args))
    arrays = (lambda args: args) if arrays_only else trace.arrays
    return lambda args: rebuild(execute(compiled, arrays(args)))


class JitFunction:
    """A Python function compiled per signature; call it like the function."""

    def __init__(self, fun, static_argnums=(), device=None) -> None:
        self.__wrapped__ = fun
        functools.update_wrapper(self, fun)
        self.static_argnums = frozenset((static_argnums,) if isinstance(static_argnums, int) else static_argnums)
        self.device = device
        self._entries: dict = {}   # concrete key -> the runner of its specialization (see `_runner`)
        self._traces: dict = {}    # signature -> _Trace
        self._info = CacheInfo()

    def __call__(self, *args, **kwargs):
        if kwargs:
            args = self._positional(args, kwargs)
        try:
            entry = self._entries[self._key(args)]
        except (KeyError, TypeError):
            if any(isinstance(x, Tensor) or hasattr(x, "_as_graph_element") for x in args):
                return self.__wrapped__(*args)  # called while tracing another function: inline it
            entry = self._specialize(args)
        return entry(args)

    def _positional(self, args, kwargs) -> tuple:
        """Keyword arguments moved to their positions (so static_argnums and the signature apply)."""
        try:
            bound = inspect.signature(self.__wrapped__).bind(*args, **kwargs)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self.__name__}: {e}") from None
        if bound.kwargs:
            raise TypeError(f"{self.__name__}: keyword-only arguments ({', '.join(bound.kwargs)}) are not "
                            "supported by fuseflow.jit; make them positional")
        return bound.args

    def _key(self, args) -> tuple:
        key = tuple([(x.shape, x.dtype) if type(x) is np.ndarray else type(x) if type(x) in _PYTHON_DTYPES
                     else ("value", np.shape(x), np.asarray(x).dtype) for x in args])
        if self.static_argnums:
            key += tuple((i, args[i]) for i in sorted(self.static_argnums) if i < len(args))
        return key

    def _signature(self, args) -> tuple:
        for i in self.static_argnums:
            if i >= len(args):
                raise TypeError(f"{self.__name__}: static_argnums names argument {i}, but only {len(args)} were given")
        return tuple(("static", args[i]) if i in self.static_argnums else _signature_part(args[i])
                     for i in range(len(args)))

    def _trace(self, args) -> _Trace:
        signature = self._signature(args)
        trace = self._traces.get(signature)
        if trace is None:
            reason = _why_new(_closest(self._traces, signature), signature)
            trace = self._traces[signature] = _Trace(self.__wrapped__, args, self.static_argnums, self.device)
            self._info.traces += 1
            self._info.last_reason = f"traced: {reason}"
        return trace

    def _specialize(self, args):
        try:
            hash(self._key(args))
        except TypeError:
            raise TypeError(f"{self.__name__}: static arguments must be hashable (static_argnums="
                            f"{sorted(self.static_argnums)})") from None
        traces = self._info.traces
        trace = self._trace(args)
        stats = dict(KERNEL_STATS)
        arrays = trace.arrays(args)
        compiled = trace.session.prepare(trace.fetches, dict(zip(trace.feeds, arrays)))
        self._info.specializations += 1
        self._info.kernels_compiled += KERNEL_STATS["compiled"] - stats["compiled"]
        self._info.kernels_loaded += KERNEL_STATS["loaded"] - stats["loaded"]
        if self._info.traces == traces:
            shapes = ", ".join(format_shape(a.shape) for a in arrays)
            self._info.last_reason = f"new shapes ({shapes}) for a traced signature"
        entry = self._entries[self._key(args)] = _runner(trace, compiled, args)
        return entry

    def lowered(self, *args):
        """The lowering (`fuseflow.frontend.lowering.Lowered`) of the function for these arguments
        (arrays, numbers or `TensorType` specs whose dims may be None), before any pass."""
        trace = self._trace(args)
        feed_types = {ph: TensorType(ph.dtype, _arg_type(args[i])[1]) for ph, i in zip(trace.feeds, trace.dynamic)}
        return lower_graph(trace.fetches, feed_types, {})

    def lower(self, *args, pipeline: str | None = None) -> str:
        """The IR text of the function for these arguments (as for `lowered`) after the default
        pipeline (or `pipeline`), placed on this machine's devices as a call would be."""
        lowered = self.lowered(*args)
        placement = devices.placement(None, lowered.arg_devices, lowered.result_devices)
        manager = PassManager(placement=placement) if pipeline is None else PassManager(pipeline, placement=placement)
        return print_module(manager.run(lowered.module))

    def cache_info(self) -> CacheInfo:
        return CacheInfo(**vars(self._info))

    def __repr__(self) -> str:
        return f"<fuseflow.jit {self.__name__}>"


def _closest(seen, new):
    """The traced signature that differs least from `new` (None when nothing was traced)."""
    def distance(old) -> int:
        if len(old) != len(new):
            return 1 << 20
        return sum(a != b if a[0] == "static" or b[0] == "static" else
                   (a[0] != b[0]) + (len(a[2]) != len(b[2])) + (a[2] != b[2]) for a, b in zip(old, new))

    return min(reversed(list(seen)), key=distance, default=None)


def _why_new(old, new) -> str:
    if old is None:
        return "first call"
    if len(old) != len(new):
        return f"{len(new)} arguments instead of {len(old)}"
    for i, (a, b) in enumerate(zip(old, new)):
        if a == b:
            continue
        if a[0] == "static" or b[0] == "static":
            return f"static argument {i} changed from {a[1]!r} to {b[1]!r}"
        if a[0] != b[0] or a[1] != b[1]:
            return f"argument {i} dtype changed from {a[0]}{' (weak)' * a[1]} to {b[0]}{' (weak)' * b[1]}"
        if len(a[2]) != len(b[2]):
            return f"argument {i} rank changed from {len(a[2])} to {len(b[2])}"
        return f"argument {i}: which dims are 1 changed ({_ones(a[2])} -> {_ones(b[2])})"
    return "a signature seen before this one"


def _ones(pattern) -> str:
    return "[" + ", ".join("1" if one else "n" for one in pattern) + "]"


def jit(fun=None, *, static_argnums=(), device=None):
    """Compiles `fun` per signature (see the module doc); ``@jit`` or ``@jit(static_argnums=...)``.

    `device` (``"gpu"``, ``"/gpu:0"``, ``"cpu"``, any TF device name) places every op there; a GPU
    request on a machine without one fails at the first call, naming the op and the device.
    """
    DeviceSpec.parse(device)  # a malformed name fails here, where the user wrote it
    if fun is None:
        return lambda f: JitFunction(f, static_argnums, device)
    return JitFunction(fun, static_argnums, device)
