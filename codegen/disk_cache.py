"""The on-disk kernel cache: compiled kernels kept across processes, addressed by their content.

Where: ``$FUSEFLOW_CACHE_DIR`` when set and not empty, else ``$XDG_CACHE_HOME/fuseflow``, else
``~/.cache/fuseflow``; entries are the files ``kernels/<key>.ffk`` below it. ``FUSEFLOW_CACHE=0``
(or ``off``, ``false``, ``no``) turns it off: nothing is read or written. Both are read at each
kernel compilation, so a test or a tool can change them at any time.

Key (`kernel_key`): sha256 of everything that decides a kernel's machine code: its generated
source (a canonical function of the region's IR), the numba argument types, the jit options,
fuseflow's version and a hash of the codegen modules' own source (what the generated code
calls), the numba, llvmlite and Python versions, numba's code-generation settings and the
target triple, host CPU name and CPU features. An entry is thus never stale: a change to any
of them is another key.

Entry: ``MAGIC``, the payload's length (8 bytes, little-endian) and sha256 (32 bytes), then the
payload: numba's reduced ``CompileResult`` (object code plus what rebuilds the function) and the
symbols that code links to, as numba pickles them. Guarantees:

- written atomically (a temporary file in the same directory, then ``os.replace``): a reader
  sees a whole entry or none, so racing processes both succeed (the last rename wins; both
  wrote an equivalent entry);
- checked before it is unpickled (magic, length, checksum): a truncated, corrupt or foreign
  entry is reported once as a `FuseflowCacheWarning` naming it, deleted and recompiled (and
  written again); it never crashes the caller;
- a cache directory that cannot be created, read or written is reported once per process as a
  `FuseflowCacheWarning`, and compilation goes on without the disk cache.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
import threading
import warnings
from pathlib import Path

MAGIC = b"fuseflow-kernel-cache 1\n"
SUFFIX = ".ffk"
ENV_DIR = "FUSEFLOW_CACHE_DIR"
ENV_SWITCH = "FUSEFLOW_CACHE"
OFF_WORDS = {"0", "off", "false", "no"}
_HEADER = len(MAGIC) + 8 + 32

# The codegen modules whose source the compiled code depends on beyond the kernel's own text.
_CODEGEN_SOURCES = ("helpers.py", "mathlib.py", "source.py", "disk_cache.py", "pyllvm.py", "native.py")

# numba settings (``NUMBA_*`` environment variables) that change generated code.
_NUMBA_SETTINGS = ("OPT", "BOUNDSCHECK", "DEBUGINFO_DEFAULT", "LOOP_VECTORIZE", "SLP_VECTORIZE", "ENABLE_AVX")

_state_lock = threading.Lock()
_broken_dirs: set[str] = set()  # directories reported unusable: warned once, then skipped
_stamp: list[str] = []


class FuseflowCacheWarning(UserWarning):
    """A kernel cache problem that fuseflow recovered from (a corrupt entry, an unusable directory)."""


class CorruptEntry(Exception):
    """An entry whose bytes fail the header checks, or whose payload does not rebuild."""


def enabled() -> bool:
    """True unless ``FUSEFLOW_CACHE`` turns the disk cache off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in OFF_WORDS


def cache_root() -> Path:
    """The cache directory (whether or not the cache is enabled): see the module docstring."""
    chosen = os.environ.get(ENV_DIR, "")
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fuseflow"


def entries_dir() -> Path:
    """The directory that holds the entries (``kernels/`` below `cache_root`)."""
    return cache_root() / "kernels"


# ----------------------------------------------------------------------------- keys


def environment_stamp() -> str:
    """Everything besides the kernel itself that decides its machine code, as one text (computed once)."""
    with _state_lock:
        if not _stamp:
            _stamp.append(_compute_stamp())
        return _stamp[0]


def _compute_stamp() -> str:
    import llvmlite
    import llvmlite.binding as llvm
    import numba
    from numba.core import config

    here = Path(__file__).parent
    sources = hashlib.sha256()
    for name in _CODEGEN_SOURCES:
        try:
            sources.update((here / name).read_bytes())
        except OSError:  # not installed as files (a zip?): the version alone must then tell
            sources.update(f"{name}: unreadable".encode())
    # what numba's codegen().magic_tuple() says, read from LLVM without starting numba's target
    cpu = config.CPU_NAME or llvm.get_host_cpu_name()
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else llvm.get_host_cpu_features().flatten()
    triple = llvm.get_process_triple()
    parts = {
        "fuseflow": getattr(sys.modules.get("fuseflow"), "__version__", "?"),
        "codegen": sources.hexdigest(),
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "python": sys.version,
        "numba-config": [getattr(config, name, None) for name in _NUMBA_SETTINGS],
        "target": (triple, cpu, features),
    }
    return repr(sorted(parts.items()))


def kernel_key(source: str, arg_types: tuple, options: dict) -> str:
    """The entry name of a kernel: sha256 (hex) of its source, argument types, jit options and
    the `environment_stamp`."""
    text = repr((source, tuple(str(t) for t in arg_types), sorted(options.items()), environment_stamp()))
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- entries on disk


def read_entry(path: Path) -> bytes | None:
    """The payload of the entry at `path`, checked; None when there is none.

    Raises `CorruptEntry` when the bytes fail the checks and `OSError` when the file exists but
    cannot be read.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if len(data) < _HEADER or not data.startswith(MAGIC):
        raise CorruptEntry(f"no valid header ({len(data)} bytes)")
    size = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
    digest = data[len(MAGIC) + 8:_HEADER]
    payload = data[_HEADER:]
    if len(payload) != size:
        raise CorruptEntry(f"truncated: {len(payload)} of {size} payload bytes")
    if hashlib.sha256(payload).digest() != digest:
        raise CorruptEntry("checksum mismatch")
    return payload


def write_entry(path: Path, payload: bytes) -> None:
    """Writes an entry atomically: readers see the old file, no file, or the whole new one."""
    header = MAGIC + len(payload).to_bytes(8, "little") + hashlib.sha256(payload).digest()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; an entry is no secret (a shared cache reads it)
        with os.fdopen(fd, "wb") as f:
            f.write(header + payload)
        os.replace(tmp, path)
    except BaseException:
        _remove(Path(tmp))
        raise


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # already gone (another process), or not ours to remove: a reader checks it anyway


def usable_dir() -> Path | None:
    """The entries directory, created if needed; None when the cache is off or the directory is
    unusable (reported once per process and directory)."""
    if not enabled():
        return None
    directory = entries_dir()
    key = str(directory)
    if key in _broken_dirs:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(f"no read and write permission on {directory}")
    except OSError as e:
        report_unusable_dir(directory, e)
        return None
    return directory


def report_unusable_dir(directory: Path, error: BaseException) -> None:
    """Warns once per process and directory, and turns the disk cache off for that directory."""
    with _state_lock:
        if str(directory) in _broken_dirs:
            return
        _broken_dirs.add(str(directory))
    warnings.warn(f"fuseflow kernel cache: cannot use {directory} ({error}); compiling without the disk cache "
                  f"(set {ENV_DIR} to move it, or {ENV_SWITCH}=0 to turn it off)", FuseflowCacheWarning, stacklevel=3)


def report_corrupt(path: Path, why: str) -> None:
    """Warns about one bad entry and deletes it (it is recompiled and written again)."""
    warnings.warn(f"fuseflow kernel cache: entry {path} is unusable ({why}); deleted, recompiling the kernel",
                  FuseflowCacheWarning, stacklevel=3)
    _remove(path)


# ----------------------------------------------------------------------------- info and clear


def info() -> dict:
    """``directory``, ``enabled``, ``entries`` (count) and ``bytes`` (their total size)."""
    files = _entry_files()
    return {"directory": str(entries_dir()), "enabled": enabled(), "entries": len(files),
            "bytes": sum(_size(f) for f in files)}


def clear() -> int:
    """Deletes every entry (and stray temporary file) of the cache directory; returns the number of entries."""
    directory = entries_dir()
    if not directory.is_dir():
        return 0
    entries = 0
    for f in directory.iterdir():
        if f.name.endswith(SUFFIX) or f.name.endswith(".tmp") and SUFFIX in f.name:
            f.unlink(missing_ok=True)
            entries += f.name.endswith(SUFFIX)
    return entries


def _entry_files() -> list[Path]:
    directory = entries_dir()
    if not directory.is_dir():
        return []
    return [f for f in directory.iterdir() if f.name.endswith(SUFFIX)]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# ----------------------------------------------------------------------------- object code


class ObjectEntry:
    """The entry of one kernel compiled by `codegen.native`: its object code. Never raises (a bad
    entry or directory is reported, see the module docstring, and is a miss)."""

    def __init__(self, directory: Path, key: str) -> None:
        self.path = directory / (key + SUFFIX)

    def read(self) -> bytes | None:
        try:
            return read_entry(self.path)
        except CorruptEntry as e:
            report_corrupt(self.path, str(e))
        except OSError as e:
            report_unusable_dir(self.path.parent, e)
        return None

    def reject(self, why: str) -> None:
        """Reports a checked entry whose content is still unusable, and deletes it."""
        report_corrupt(self.path, why)

    def write(self, payload: bytes) -> None:
        try:
            write_entry(self.path, payload)
        except OSError as e:
            report_unusable_dir(self.path.parent, e)


def object_entry(key: str) -> ObjectEntry | None:
    """The entry for object code under `key`, or None when the disk cache is off or unusable."""
    directory = usable_dir()
    return None if directory is None else ObjectEntry(directory, "native-" + key)


# ----------------------------------------------------------------------------- numba's cache hook


class KernelDiskCache:
    """numba's cache hook for one kernel's dispatcher (its ``_cache``): ``Dispatcher.compile`` asks
    `load_overload` before compiling and hands what it compiled to `save_overload`. (It has the
    methods of numba's ``caching._Cache`` without deriving from that private class.)

    Never raises: a bad entry or directory is reported (see the module docstring) and is a miss.
    `loaded` tells whether the kernel came from disk.
    """

    def __init__(self, directory: Path, key: str) -> None:
        self.path = directory / (key + SUFFIX)
        self.loaded = False

    @property
    def cache_path(self) -> str:
        return str(self.path.parent)

    def enable(self) -> None:
        pass

    def disable(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def load_overload(self, sig, target_context):
        try:
            payload = read_entry(self.path)
        except CorruptEntry as e:
            report_corrupt(self.path, str(e))
            return None
        except OSError as e:
            report_unusable_dir(self.path.parent, e)
            return None
        if payload is None:
            return None
        try:
            cres = _rebuild(target_context, pickle.loads(payload))
        except Exception as e:  # noqa: BLE001  (a checked entry that still does not rebuild: never fatal)
            report_corrupt(self.path, f"{type(e).__name__}: {e}")
            return None
        self.loaded = True
        return cres

    def save_overload(self, sig, cres) -> None:
        if cres.library.has_dynamic_globals or any(not x.can_cache for x in cres.lifted):
            return  # holds addresses of this process (numba cannot cache it either)
        try:
            payload = dumps(_reduce(cres))
        except Exception as e:  # noqa: BLE001  (a kernel numba cannot pickle is only not cached)
            warnings.warn(f"fuseflow kernel cache: cannot store {self.path.name} ({type(e).__name__}: {e})",
                          FuseflowCacheWarning, stacklevel=2)
            return
        try:
            write_entry(self.path, payload)
        except OSError as e:
            report_unusable_dir(self.path.parent, e)


def _reduce(cres) -> dict:
    """What an entry holds: numba's reduced ``CompileResult`` and the symbols its code links to."""
    return {"symbols": declared_symbols(cres.library._get_module_for_linking()), "result": cres._reduce()}


def _rebuild(target_context, entry: dict):
    """numba's ``CompileResult`` from an entry, after checking every symbol it links to exists.

    numba's own cache refreshes the whole target context first (~250 ms: every lowering registry,
    and scipy's import for BLAS); loading object code needs only the runtime's symbols
    (``rtsys.initialize``) and the result's own initialisers. A symbol left unresolved would abort
    the process inside LLVM, so it is checked first: on a miss the full refresh is done, and an entry still missing one is refused.
    """
    from numba.core.compiler import CompileResult
    from numba.core.runtime import rtsys

    result = entry["result"]
    rtsys.initialize(target_context)
    for init in result[7]:  # reload_init
        init()
    missing = _unresolved(target_context, entry["symbols"])
    if missing:
        target_context.refresh()
        missing = _unresolved(target_context, entry["symbols"])
    if missing:
        raise CorruptEntry(f"links to unknown symbols {', '.join(missing[:3])}")
    return CompileResult._rebuild(target_context, *result)


def declared_symbols(module) -> list[str]:
    """The functions and globals an LLVM module uses but does not define (intrinsics aside)."""
    names = [f.name for f in module.functions if f.is_declaration and not f.name.startswith("llvm.")]
    return names + [g.name for g in module.global_variables if g.is_declaration]


def _unresolved(target_context, symbols) -> list[str]:
    import llvmlite.binding as ll

    engine = target_context.codegen()._engine
    return [n for n in symbols if not engine.is_symbol_defined(n) and not ll.address_of_symbol(n)]


def dumps(obj) -> bytes:
    """Pickles a payload as numba does (its pickler knows numba's types and functions)."""
    from numba.core.serialize import dumps as numba_dumps

    return numba_dumps(obj)
