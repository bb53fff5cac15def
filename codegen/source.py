"""Shared machinery of generated CPU kernels: source writing, compiling and the kernel caches.

A kernel is the source text of ``def kernel(out0, ..., in0, ...)`` with explicit
loops. `compile_kernel` compiles it once per (source text, argument dtypes) with
``numba.njit``, or with LLVM directly (`codegen.native`) where the caller asks for it and
`codegen.pyllvm` takes the source, and keeps it in memory, so two equal ops (or the same op at a new
batch size: sizes are read from the arrays at run time) share one compiled
kernel. Behind the memory cache sits the disk cache (`fuseflow.codegen.disk_cache`):
a kernel compiled by an earlier process is loaded, not compiled. `KERNEL_STATS`
counts ``compiled``, ``loaded`` (from disk) and ``reused`` (from memory) kernels.
"""

from __future__ import annotations

import hashlib
import itertools
import linecache
import os
import secrets
import threading
from contextlib import contextmanager

import numba
import numpy as np
from numba import types as nbt

from fuseflow.codegen import disk_cache, helpers, mathlib
from fuseflow.ir import dtypes as dt

KERNEL_STATS = {"compiled": 0, "reused": 0, "loaded": 0}
_CACHE: dict[tuple, Kernel] = {}
_LOCK = threading.Lock()


class Source:
    """Lines of Python source with an indentation level (``with src.block():`` nests)."""

    def __init__(self, header: str) -> None:
        self.lines = [header]
        self.depth = 1

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def block(self, header: str):
        self(header)
        self.depth += 1
        yield
        self.depth -= 1

    @contextmanager
    def loops(self, names, bounds):
        """Nested ``for name in range(bound)`` loops, outermost first."""
        depth = self.depth
        for name, bound in zip(names, bounds):
            self(f"for {name} in range({bound}):")
            self.depth += 1
        yield
        self.depth = depth

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def kernel_header(outputs: int, inputs: int, extra=()) -> str:
    """``def kernel(out0, ..., in0, ..., extra...):``."""
    names = [f"out{i}" for i in range(outputs)] + [f"in{i}" for i in range(inputs)] + list(extra)
    return f"def kernel({', '.join(names)}):"


def broadcast_index(shape, domain, loop_vars) -> str:
    """The subscript of a value of `shape` at the loop index of `domain` (numpy broadcasting).

    A dim of size 1 where the domain dim is not 1 reads index 0; missing leading dims are
    dropped. Only that pattern, never a size, shapes the text.
    """
    offset = len(domain) - len(shape)
    parts = ["0" if s == 1 and domain[offset + j] != 1 else loop_vars[offset + j] for j, s in enumerate(shape)]
    return subscript(parts)


def subscript(parts) -> str:
    return "[()]" if not parts else "[" + ", ".join(parts) + "]"


def array_arg(arr: np.ndarray) -> np.ndarray:
    """The array as a kernel sees it: float16 buffers as their uint16 bits (numba has no float16)."""
    return arr.view(np.uint16) if arr.dtype == np.float16 else arr


def _nb_array(dtype: dt.DType, ndim: int, readonly: bool) -> nbt.Array:
    np_dtype = np.dtype(np.uint16) if dtype is dt.float16 else dtype.np
    return nbt.Array(numba.from_dtype(np_dtype), ndim, "C", readonly=readonly)


def array_types(outputs, inputs=()) -> tuple:
    """Numba argument types for C-contiguous arrays: `outputs` writable, `inputs` read-only.

    Inputs are typed read-only so one compiled version takes writable and read-only
    (e.g. constant) arrays alike.
    """
    return (tuple(_nb_array(t.dtype, len(t.shape), False) for t in outputs)
            + tuple(_nb_array(t.dtype, len(t.shape), True) for t in inputs))


class Kernel:
    """A compiled generated kernel: exactly one numba version, for C-contiguous arrays.

    An argument that does not match (a strided view, a wrong dtype) is retried as a
    contiguous copy, and otherwise named in a TypeError. `fast` is the callable that takes
    matching arguments only (raising TypeError otherwise), for callers that keep their own
    retry; `dispatcher` the numba dispatcher (what compiled drivers call).
    """

    def __init__(self, dispatcher, source: str) -> None:
        self.dispatcher = self.fast = dispatcher
        self.source = source

    def __call__(self, *args):
        try:
            return self.dispatcher(*args)
        except TypeError:
            if not any(isinstance(a, np.ndarray) and not a.flags.c_contiguous for a in args):
                expected = ", ".join(str(t) for t in self.dispatcher.signatures[0])
                got = ", ".join(str(numba.typeof(a)) for a in args)
                raise TypeError(f"kernel arguments ({got}) do not match its types ({expected})") from None
        return self.dispatcher(*[np.ascontiguousarray(a) if isinstance(a, np.ndarray) and a.ndim else a
                                 for a in args])


class NativeKernel:
    """A kernel compiled by `codegen.native` (no numba); arguments it was not compiled for go to
    the numba version of the same source, compiled when first needed (so is `dispatcher`)."""

    def __init__(self, fn, source: str, arg_types: tuple) -> None:
        self.fast = fn
        self.source = source
        self._arg_types = arg_types

    @property
    def dispatcher(self):
        return compile_kernel(self.source, self._arg_types).dispatcher

    def __call__(self, *args):
        try:
            return self.fast(*args)
        except TypeError:
            return compile_kernel(self.source, self._arg_types)(*args)


_NUMBA_ONLY = threading.local()


@contextmanager
def numba_kernels():
    """Kernels compiled inside are numba's even where LLVM could take them. For executables run
    by a native driver (`codegen.driver`): it calls numba's versions, so LLVM's would be compiled
    for nothing."""
    previous = getattr(_NUMBA_ONLY, "on", False)
    _NUMBA_ONLY.on = True
    try:
        yield
    finally:
        _NUMBA_ONLY.on = previous


def native_enabled() -> bool:
    """Whether kernels may be compiled without numba (``FUSEFLOW_NATIVE=0`` turns it off)."""
    return os.environ.get("FUSEFLOW_NATIVE", "1").lower() not in disk_cache.OFF_WORDS


def compile_kernel(source: str, arg_types: tuple, native: bool = False) -> Kernel | NativeKernel:
    """The compiled ``kernel`` of `source` for numba `arg_types`, from the cache when it is there.

    With `native`, LLVM compiles it directly (`codegen.native`) when `codegen.pyllvm` takes the
    source, else numba does. Compiled eagerly (errors surface at compile time) and only once:
    numba may not add versions behind our back, so `KERNEL_STATS` counts every compilation (or
    disk load).
    """
    native = native and native_enabled() and not getattr(_NUMBA_ONLY, "on", False)
    key = (source, tuple(str(t) for t in arg_types), native)
    with _LOCK:
        kernel = _CACHE.get(key)
        if kernel is not None:
            KERNEL_STATS["reused"] += 1
            return kernel
        kernel = _CACHE[key] = (native and _native(source, arg_types)) or _numba(source, arg_types)
        return kernel


def _native(source: str, arg_types: tuple) -> NativeKernel | None:
    from fuseflow.codegen.native import compile_native
    from fuseflow.codegen.pyllvm import Unsupported

    try:
        fn, loaded = compile_native(source, [_pyllvm_type(t) for t in arg_types], _namespace())
    except Unsupported:
        return None
    KERNEL_STATS["loaded" if loaded else "compiled"] += 1
    return NativeKernel(fn, source, arg_types)


def _pyllvm_type(t):
    from fuseflow.codegen.pyllvm import ArrayType, Unsupported

    if isinstance(t, nbt.Array):
        if t.layout != "C":
            raise Unsupported(f"array layout {t.layout}")
        return ArrayType(np.dtype(numba.np.numpy_support.as_dtype(t.dtype)), t.ndim, not t.mutable)
    return np.dtype(numba.np.numpy_support.as_dtype(t))


def _numba(source: str, arg_types: tuple) -> Kernel:
    options = {"error_model": "numpy", "nogil": True}  # nogil: kernels run on split threads
    dispatcher = _jit(source, options)
    disk = _disk_entry(source, arg_types, options)
    if disk is not None:
        dispatcher._cache = disk  # numba's hook: asked before compiling, handed what was compiled
    dispatcher.compile(arg_types)
    dispatcher.disable_compile()
    KERNEL_STATS["loaded" if disk is not None and disk.loaded else "compiled"] += 1
    return Kernel(dispatcher, source)


def _disk_entry(source: str, arg_types: tuple, options: dict):
    """The disk-cache hook of one kernel, or None when the disk cache is off or unusable."""
    directory = disk_cache.usable_dir() if _DISTINCT_SYMBOL_NAMES else None
    if directory is None:
        return None
    return disk_cache.KernelDiskCache(directory, disk_cache.kernel_key(source, arg_types, options))


def _jit(source: str, options: dict):
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<fuseflow-kernel-{digest}>"
    # Registered so numba's error messages and tracebacks can quote the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # An importable module name: numba refuses to cache (and pickle) a function without one, and
    # rebuilds a loaded kernel's environment from that module.
    namespace = {"__name__": __name__, **_namespace()}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102  (our own generated source)
    return numba.njit(cache=False, **options)(namespace["kernel"])


def _namespace() -> dict:
    """The names generated source sees."""
    return {"np": np, "_h": helpers, "_m": mathlib}


def _distinct_symbol_names() -> bool:
    """Starts numba's function counter at a random point of a large range, once per process.

    numba names a compiled function by its qualified name plus that counter, which runs the same
    way in every process; kernels loaded from disk come from other processes, so two different
    functions (two closures of one factory, say) could meet under one symbol name, and the JIT
    linker would bind calls to whichever it saw first. A random start in [1, 2^48] makes that
    negligible. False if this numba has no such counter: the disk cache then stays off.
    """
    try:
        from numba.core.bytecode import FunctionIdentity
    except ImportError:
        return False
    if not isinstance(getattr(FunctionIdentity, "_unique_ids", None), itertools.count):
        return False
    FunctionIdentity._unique_ids = itertools.count(secrets.randbits(48) + 1)
    return True


_DISTINCT_SYMBOL_NAMES = _distinct_symbol_names()
