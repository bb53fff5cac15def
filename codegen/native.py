"""Kernels compiled by LLVM directly: the module `codegen.pyllvm` builds, optimised, loaded, called.

Why: a kernel through numba costs ~0.3 s of numba set-up on the first compile of a process plus
its pipeline per kernel (a GELU: 0.44 s cold); through `pyllvm` and llvmlite alone it costs tens
of milliseconds. The machine code is the same kind (LLVM -O3 for the host CPU, loops vectorised),
and the object code goes to the disk cache, so a second process only loads it.

The call: each kernel is a CPython builtin function (a METH_FASTCALL entry written in LLVM IR);
arrays are passed as the numpy objects themselves, and the kernel reads their data pointer, dims, flags and dtype from the object (`ArrayABI`, found by
probing real arrays at start-up, so a numpy with another layout turns this path off instead of
misreading memory). A kernel returns 1 without touching memory when an array is not what it was
compiled for (another dtype or rank, not C-contiguous, not aligned, byte-swapped, an output not
writable); `NativeKernel` then raises TypeError, which the callers take as "use the copying path".
The entry releases the GIL around the loops, so the runtime's worker threads run kernels in parallel.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import re
import sys
import threading
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from fuseflow.codegen import disk_cache, pyllvm
from fuseflow.codegen.pyllvm import ArrayType, Unsupported

# ----------------------------------------------------------------------------- numpy's array object


@dataclass(frozen=True)
class ArrayABI:
    """Byte offsets of the fields a kernel reads in a numpy array object and its dtype object."""

    data: int
    nd: int
    dims: int
    descr: int
    flags: int
    type_num: int  # in the dtype object
    byteorder: int  # in the dtype object


def _word(address: int) -> int:
    return ctypes.c_uint64.from_address(address).value


def _probe() -> ArrayABI | None:
    """The offsets, found in real arrays and checked on others; None when they cannot be trusted."""
    a = np.zeros((2, 3, 5), np.float32)
    base = id(a)
    try:
        data = next(o for o in range(0, 128, 8) if _word(base + o) == a.ctypes.data)
        descr = next(o for o in range(0, 160, 8) if _word(base + o) == id(a.dtype))
        d = id(a.dtype)
        kind_at = next(o for o in range(8, 64) if ctypes.string_at(d + o, 3) == b"ff=")
    except StopIteration:
        return None
    abi = ArrayABI(data=data, nd=data + 8, dims=data + 16, descr=descr, flags=descr + 8,
                   type_num=kind_at + 4, byteorder=kind_at + 2)
    checks = [np.zeros((4, 1), np.int64), np.ones(7, np.uint8)[::2], np.zeros((), np.float64),
              np.zeros((3, 2), np.int16).T, np.zeros(3, ">f8")]
    return abi if all(_reads(abi, x) for x in checks) else None


def _reads(abi: ArrayABI, x: np.ndarray) -> bool:
    """Whether `abi` reads `x`'s fields right."""
    base, d = id(x), id(x.dtype)
    dims = _word(base + abi.dims)
    return (_word(base + abi.data) == x.ctypes.data
            and ctypes.c_int32.from_address(base + abi.nd).value == x.ndim
            and all(_word(dims + 8 * k) == n for k, n in enumerate(x.shape))
            and ctypes.c_int32.from_address(base + abi.flags).value == x.flags.num
            and ctypes.c_int32.from_address(d + abi.type_num).value == x.dtype.num
            and ctypes.string_at(d + abi.byteorder, 1) == x.dtype.byteorder.encode())


ABI = _probe()
_C_CONTIGUOUS, _ALIGNED, _WRITEABLE = 0x1, 0x100, 0x400
_SWAPPED = b">" if sys.byteorder == "little" else b"<"


def _type_nums(dtype: np.dtype) -> list[int]:
    """Every numpy type number with `dtype`'s values (int64 is both 'l' and 'q' on Linux)."""
    return sorted({np.dtype(c).num for c in np.typecodes["All"] if c not in "OSUVMm" and np.dtype(c) == dtype})


def array_prologue(tr: pyllvm.Translator, obj: ir.Value, t: ArrayType, mismatch: ir.Block) -> pyllvm.Array:
    """Reads array object `obj` (checked against `t`, writable unless `readonly`) into an `Array`."""
    b = tr.builder
    i32, i64, i8p = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()

    def field(offset: int, ty: ir.Type, base=obj) -> ir.Value:
        return b.load(b.bitcast(b.gep(base, [ir.Constant(i64, offset)]), ty.as_pointer()))

    flags = field(ABI.flags, i32)
    need = _C_CONTIGUOUS | _ALIGNED | (0 if t.readonly else _WRITEABLE)
    ok = b.icmp_unsigned("==", b.and_(flags, ir.Constant(i32, need)), ir.Constant(i32, need))
    ok = b.and_(ok, b.icmp_signed("==", field(ABI.nd, i32), ir.Constant(i32, t.ndim)))
    descr = field(ABI.descr, i8p)
    num = field(ABI.type_num, i32, descr)
    known = [b.icmp_signed("==", num, ir.Constant(i32, n)) for n in _type_nums(t.dtype)]
    ok = b.and_(ok, _any(b, known))
    order = field(ABI.byteorder, ir.IntType(8), descr)
    ok = b.and_(ok, b.icmp_unsigned("!=", order, ir.Constant(ir.IntType(8), _SWAPPED[0])))
    go_on = tr.fn.append_basic_block("checked")
    b.cbranch(ok, go_on, mismatch)
    b.position_at_end(go_on)
    elem = pyllvm.storage_type(t.dtype).as_pointer()
    data = b.bitcast(field(ABI.data, i8p), elem)
    dims = field(ABI.dims, i64.as_pointer())
    shape = [b.load(b.gep(dims, [ir.Constant(i64, k)])) for k in range(t.ndim)]
    return pyllvm.Array(data, shape, t)


def _any(b: ir.IRBuilder, conds: list) -> ir.Value:
    acc = conds[0]
    for c in conds[1:]:
        acc = b.or_(acc, c)
    return acc


# ----------------------------------------------------------------------------- LLVM


class _Engine:
    """The target machine and one MCJIT engine holding every native kernel of the process."""

    def __init__(self) -> None:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _add_symbols(llvm)
        self.llvm = llvm
        target = llvm.Target.from_triple(llvm.get_process_triple())
        self.cpu, self.features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
        self.machine = target.create_target_machine(cpu=self.cpu, features=self.features, opt=3,
                                                    reloc="default", codemodel="jitdefault")
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.machine)
        self.lock = threading.Lock()

    def compile(self, module: ir.Module) -> tuple[bytes, list]:
        """Object code of `module`, optimised at -O3 with loop and SLP vectorisation, and the
        external symbols it links to."""
        llvm = self.llvm
        module.triple = self.machine.triple
        module.data_layout = str(self.machine.target_data)
        ref = llvm.parse_assembly(str(module))
        ref.verify()
        options = llvm.create_pipeline_tuning_options(speed_level=3)
        options.loop_vectorization = True
        options.slp_vectorization = True
        builder = llvm.create_pass_builder(self.machine, options)
        builder.getModulePassManager().run(ref, builder)
        text = str(ref)
        if pyllvm.STREAM_HINT in text:
            ref = llvm.parse_assembly(nontemporal(text))
            ref.verify()
        return self.machine.emit_object(ref), _external_symbols(ref)

    def load(self, obj: bytes, name: str) -> int:
        """Adds object code to the engine; the address of its function `name`."""
        with self.lock:
            self.engine.add_object_file(self.llvm.ObjectFileRef.from_data(obj))
            self.engine.finalize_object()
            return self.engine.get_function_address(name)

    def stamp(self) -> str:
        import llvmlite

        return repr((llvmlite.__version__, self.llvm.get_process_triple(), self.cpu, self.features))


def nontemporal(text: str) -> str:
    """Optimised IR `text` with the vector stores of streaming loops (`pyllvm.stream_from`) made
    non-temporal and aligned to their size.

    Only after vectorisation: the loop vectoriser refuses a loop whose scalar stores are
    non-temporal unless they claim vector alignment, which the scalar iterations do not have. A
    streaming loop's vector iterations do: it starts at a `pyllvm.STREAM_ALIGN`-aligned element
    and each vector store covers the next whole vector. Its vector body is the block named
    ``vector.body`` whose back edge carries the loop's ID (which keeps our hint).
    """
    hint = re.search(rf'^(!\d+) = !{{!"{pyllvm.STREAM_HINT}"}}$', text, re.MULTILINE)
    if hint is None:
        return text
    loops = set(re.findall(rf"^(!\d+) = distinct !{{.*{hint[1]}(?!\d)", text, re.MULTILINE))
    numbers = re.findall(r"^!(\d+) =", text, re.MULTILINE)
    marker = f"!{1 + max(map(int, numbers))}"
    lines = text.split("\n")
    start, label = 0, ""
    for i, line in enumerate(lines):
        block = re.match(r"^([\w.$-]+):", line)
        if block:
            start, label = i, block[1]
        loop = re.search(r"!llvm\.loop (!\d+)", line)
        if loop and loop[1] in loops and label.startswith("vector.body"):
            for j in range(start, i):
                lines[j] = _stream_store(lines[j], marker)
    return "\n".join(lines) + f"\n{marker} = !{{i32 1}}\n"


def _stream_store(line: str, marker: str) -> str:
    store = re.match(r"^(\s*store <(\d+) x (float|double)> .*, align )\d+(.*)$", line)
    if store is None:
        return line
    size = int(store[2]) * (4 if store[3] == "float" else 8)
    return f"{store[1]}{size}{store[4]}, !nontemporal {marker}"


# The C functions and data kernels may link to: libm calls LLVM makes of some intrinsics, and the
# Python C API the entry point uses. Their addresses are given to LLVM explicitly (it does not
# search the process by itself).
_C_FUNCTIONS = ("pow", "powf", "fmod", "fmodf", "memset", "memcpy", "memmove", "malloc", "free")
_PY_FUNCTIONS = ("PyLong_AsLongLong", "PyLong_AsUnsignedLongLong", "PyFloat_AsDouble", "PyErr_Occurred",
                 "PyErr_SetString", "PyEval_SaveThread", "PyEval_RestoreThread", "Py_IncRef")
_PY_DATA = ("PyExc_TypeError", "PyExc_MemoryError", "_Py_NoneStruct")


def _add_symbols(llvm) -> None:
    process = ctypes.CDLL(None)
    for name in _C_FUNCTIONS:
        if hasattr(process, name):
            llvm.add_symbol(name, ctypes.cast(getattr(process, name), ctypes.c_void_p).value)
    for name in _PY_FUNCTIONS:
        llvm.add_symbol(name, ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value)
    for name in _PY_DATA:
        llvm.add_symbol(name, ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, name)))


# Intrinsics and instructions the code generator may turn into calls of these C functions.
_LIBCALLS = {"llvm.pow.": ("pow", "powf"), "llvm.memset": ("memset",), "llvm.memcpy": ("memcpy",),
             "llvm.memmove": ("memmove",), " frem ": ("fmod", "fmodf")}


def _external_symbols(ref) -> list[str]:
    """The C functions and data the optimised module `ref` may link to (its declarations, and the
    libcalls of intrinsics)."""
    text = str(ref)
    out = set(disk_cache.declared_symbols(ref))
    for marker, names in _LIBCALLS.items():
        if marker in text:
            out.update(names)
    return sorted(out)


_ENGINE: list = []


def engine() -> _Engine:
    """The process's engine; `Unsupported` where one cannot be made (say, a C library without the
    symbols `_add_symbols` looks up): numba then compiles every kernel."""
    if not _ENGINE:
        try:
            _ENGINE.append(_Engine())
        except (OSError, AttributeError, TypeError, ValueError, RuntimeError) as e:
            _ENGINE.append(e)
    if isinstance(_ENGINE[0], Exception):
        raise Unsupported(f"no LLVM engine here: {_ENGINE[0]}")
    return _ENGINE[0]


# ----------------------------------------------------------------------------- kernels


class _MethodDef(ctypes.Structure):
    """CPython's PyMethodDef."""

    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p), ("ml_flags", ctypes.c_int),
                ("ml_doc", ctypes.c_char_p)]


_METH_FASTCALL = 0x80
_new_function = ctypes.pythonapi.PyCFunction_NewEx
_new_function.restype = ctypes.py_object
_new_function.argtypes = [ctypes.POINTER(_MethodDef), ctypes.c_void_p, ctypes.c_void_p]  # self, module: NULL
_DEFS: list = []  # every PyMethodDef a function points to, kept alive with the process


def _python_function(address: int, name: str):
    """A Python builtin function whose C code is at `address` (a METH_FASTCALL entry)."""
    method = _MethodDef(name.encode(), address, _METH_FASTCALL, b"a fuseflow kernel compiled by LLVM")
    _DEFS.append(method)
    return _new_function(ctypes.byref(method), None, None)


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list) -> ir.Function:
    return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args), name)


def _external(module: ir.Module, name: str, ty: ir.Type) -> ir.GlobalVariable:
    return module.globals.get(name) or ir.GlobalVariable(module, ty, name=name)


def python_entry(module: ir.Module, core: ir.Function, arg_types: list) -> ir.Function:
    """``PyObject *name_py(self, args, nargs)``, CPython's METH_FASTCALL convention: converts the
    arguments, runs `core` with the GIL released, and returns None, or raises TypeError (when the
    count is wrong or `core` says an array does not match), MemoryError, or the conversion's error."""
    i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
    obj = i8.as_pointer()
    fn = ir.Function(module, ir.FunctionType(obj, [obj, obj.as_pointer(), i64]), core.name + "_py")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    _, args, nargs = fn.args

    def raise_error(kind: str, message: str) -> None:
        text = bytearray(message.encode() + b"\0")
        g = ir.GlobalVariable(module, ir.ArrayType(i8, len(text)), name=f"{core.name}_msg{len(module.globals)}")
        g.initializer, g.global_constant, g.linkage = ir.Constant(g.type.pointee, text), True, "internal"
        setter = _declare(module, "PyErr_SetString", ir.VoidType(), [obj, obj])
        b.call(setter, [b.load(_external(module, kind, obj)), b.bitcast(g, obj)])
        b.ret(ir.Constant(obj, None))

    count_ok, wrong_count = fn.append_basic_block("count_ok"), fn.append_basic_block("wrong_count")
    b.cbranch(b.icmp_signed("==", nargs, ir.Constant(i64, len(arg_types))), count_ok, wrong_count)
    b.position_at_end(wrong_count)
    raise_error("PyExc_TypeError", f"a kernel takes {len(arg_types)} arguments")
    b.position_at_end(count_ok)
    values = []
    for k, t in enumerate(arg_types):
        item = b.load(b.gep(args, [ir.Constant(i64, k)]))
        values.append(item if isinstance(t, ArrayType) else _convert(module, b, fn, item, t))
    state = b.call(_declare(module, "PyEval_SaveThread", obj, []), [])
    code = b.call(core, values)
    b.call(_declare(module, "PyEval_RestoreThread", ir.VoidType(), [obj]), [state])
    ok, bad, no_memory = (fn.append_basic_block(n) for n in ("ok", "mismatch", "no_memory"))
    switch = b.switch(code, ok)
    switch.add_case(ir.Constant(i32, 1), bad)
    switch.add_case(ir.Constant(i32, 2), no_memory)
    b.position_at_end(bad)
    raise_error("PyExc_TypeError", "kernel arguments do not match the types it was compiled for")
    b.position_at_end(no_memory)
    raise_error("PyExc_MemoryError", "a kernel could not allocate its scratch arrays")
    b.position_at_end(ok)
    none = _external(module, "_Py_NoneStruct", i8)
    b.call(_declare(module, "Py_IncRef", ir.VoidType(), [obj]), [none])
    b.ret(none)
    return fn


def _convert(module: ir.Module, b: ir.IRBuilder, fn: ir.Function, item: ir.Value, t) -> ir.Value:
    """Python number `item` as a value of scalar type `t`; `fn` returns NULL if that raised."""
    obj, i64 = ir.IntType(8).as_pointer(), ir.IntType(64)
    if t.kind in "iu":
        name = "PyLong_AsLongLong" if t.kind == "i" else "PyLong_AsUnsignedLongLong"
        value = b.call(_declare(module, name, i64, [obj]), [item])
        maybe_error = b.icmp_signed("==", value, ir.Constant(i64, -1))
    elif t.kind == "f":
        value = b.call(_declare(module, "PyFloat_AsDouble", ir.DoubleType(), [obj]), [item])
        maybe_error = b.fcmp_ordered("==", value, ir.Constant(ir.DoubleType(), -1.0))
    else:
        raise Unsupported(f"a kernel argument of type {t}")
    check, error, go_on = (fn.append_basic_block(n) for n in ("check", "error", "converted"))
    b.cbranch(maybe_error, check, go_on)
    b.position_at_end(check)
    occurred = b.call(_declare(module, "PyErr_Occurred", obj, []), [])
    b.cbranch(b.icmp_unsigned("!=", occurred, ir.Constant(obj, None)), error, go_on)
    b.position_at_end(error)
    b.ret(ir.Constant(obj, None))
    b.position_at_end(go_on)
    if t.itemsize == 8:
        return value
    return b.fptrunc(value, pyllvm.ll_type(t)) if t.kind == "f" else b.trunc(value, pyllvm.ll_type(t))


def compile_native(source: str, arg_types: list, namespace: dict):
    """``(function, loaded)``: a Python callable running `source` compiled for `arg_types`
    (`pyllvm` types), from the disk cache when an entry is there. Raises `Unsupported` when this
    path cannot take the kernel."""
    if ABI is None:
        raise Unsupported("numpy's array object layout was not recognised")
    eng = engine()
    # the object code reads array objects at the ABI's offsets: they, and numpy's version, are part of the key
    key = (source, arg_types, eng.stamp(), ABI, np.__version__, disk_cache.environment_stamp())
    digest = hashlib.sha256(repr(key).encode())
    name = "fuseflow_" + digest.hexdigest()[:24]
    entry = disk_cache.object_entry(digest.hexdigest())
    obj = _read(entry, name)
    loaded = obj is not None
    if obj is None:
        module = pyllvm.translate_kernel(source, arg_types, name, namespace)
        python_entry(module, module.globals[name], arg_types)
        obj, symbols = eng.compile(module)
        if entry is not None:
            entry.write(pack(name, symbols, obj))
    return _python_function(eng.load(obj, name + "_py"), name), loaded


# Object files start with these bytes (ELF, 64-bit Mach-O, x86-64 COFF).
_OBJECT_MAGIC = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\x64\x86")


def pack(name: str, symbols: list, obj: bytes) -> bytes:
    """A disk-cache payload: a JSON line (the function's name, the symbols the code links to), then the object code."""
    return json.dumps({"name": name, "symbols": symbols}).encode() + b"\n" + obj


def unpack(payload: bytes) -> tuple[dict, bytes]:
    head, _, obj = payload.partition(b"\n")
    return json.loads(head), obj


def _read(entry, name: str) -> bytes | None:
    """The object code in `entry`, checked before LLVM sees it (a bad one is reported, and None)."""
    payload = entry.read() if entry is not None else None
    if payload is None:
        return None
    try:
        head, obj = unpack(payload)
        why = None if head["name"] == name else "another kernel's entry"
        if why is None and (not obj.startswith(_OBJECT_MAGIC) or name.encode() not in obj):
            why = "not object code of this kernel"
        missing = [s for s in head["symbols"] if not engine().llvm.address_of_symbol(s)]
        if why is None and missing:  # MCJIT would abort the process on an unresolved symbol
            why = f"links to symbols this process lacks: {', '.join(missing)}"
    except (ValueError, KeyError, TypeError) as e:
        why = f"no valid header ({type(e).__name__})"
    if why is None:
        return obj
    entry.reject(why)
    return None
