"""The textual form of the IR: one op per line, typed results, values renumbered.

Values are named ``%0, %1, ...`` per function in order of definition (block
arguments first, an op's results before its regions), so equal IR prints equal
text. The parser (`fuseflow.ir.parser`) reads this form back exactly::

    func @main(%0: f32[2,3], %1: f32[3]) -> (f32[2]) {
      %2 = add %0, %1 : f32[2,3]
      %3 = reduce_sum %2 {axes=[1], keepdims=false} : f32[2]
      %4 = fused %0, %1 : f32[2,3] {
      ^bb(%5: f32[2,3], %6: f32[3]):
        %7 = mul %5, %6 : f32[2,3]
        yield %7
      }
      return %3
    }

An op placed on a device ends with ``on "/device:GPU:0"`` after its types (see
`fuseflow.ir.devices`); an op without a device prints nothing there.

Attribute values: ints, floats (``repr``, so ``1.0`` stays a float and reads
back bit-exactly; ``inf``, ``-inf``, ``nan``), ``true``/``false``, ``none``,
quoted strings, ``b"..."`` bytes, dtypes by short name (``f32``), tuples as
``[a, b]`` and arrays as ``dense<f32[2]>[1.0, 2.0]`` (at most `DENSE_LIST_LIMIT`
elements) or ``dense<f32[1024]>0x...`` (little-endian bytes in hex).
"""

from __future__ import annotations

import json
import re

import numpy as np

from fuseflow.ir.core import Block, Function, Loc, Module, Op
from fuseflow.ir.dtypes import DType, as_dtype
from fuseflow.ir.types import TensorType

DENSE_LIST_LIMIT = 16  # elements: larger arrays print as hex bytes
DTYPE_ATTRS = ("dtype", "output_type")  # attributes that hold a dtype, possibly spelt as a name
INDENT = "  "

_IDENT = re.compile(r"[A-Za-z_][\w.]*\Z")


def print_module(module: Module) -> str:
    """The text of every function of `module`, in order, separated by blank lines."""
    return "\n".join(print_function(fn) for fn in module.functions.values())


def print_function(fn: Function) -> str:
    """The text of one function, ending with a newline."""
    return "\n".join(FunctionPrinter(fn).lines()) + "\n"


class FunctionPrinter:
    """Prints one function; `names` maps each value it defines to ``%N``.

    A value used but never defined in the function (invalid IR) prints as
    ``%?N``, so the verifier can still quote the offending op.
    """

    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.names: dict = {}
        self._unknown = 0
        self._number_block(fn.body)

    def _number_block(self, block: Block) -> None:
        for v in block.args:
            self.names.setdefault(v, f"%{len(self.names)}")
        for op in block.ops:
            for v in op.results:
                self.names.setdefault(v, f"%{len(self.names)}")
            for region in op.regions:
                self._number_block(region)

    def value(self, v) -> str:
        """The printed name of `v`."""
        if v not in self.names:
            self.names[v] = f"%?{self._unknown}"
            self._unknown += 1
        return self.names[v]

    def lines(self) -> list[str]:
        """The function's lines, without trailing newlines."""
        fn = self.fn
        args = ", ".join(f"{self.value(a)}: {a.type}" for a in fn.args)
        ops = fn.body.ops
        results = ops[-1].operands if ops and ops[-1].name == "return" else ()
        types = ", ".join(str(v.type) for v in results)
        out = [f"func @{format_symbol(fn.name)}({args}) -> ({types}) {{"]
        self._block_ops(fn.body, INDENT, out)
        out.append("}")
        return out

    def op_line(self, op: Op) -> str:
        """One op's line, without its regions' bodies."""
        text = ""
        if op.results:
            text = ", ".join(self.value(v) for v in op.results) + " = "
        text += format_symbol(op.name)
        if op.operands:
            text += " " + ", ".join(self.value(v) for v in op.operands)
        if op.attrs:
            text += " " + format_attrs(op.attrs)
        if op.results:
            text += " : " + ", ".join(str(v.type) for v in op.results)
        if op.device:
            text += " on " + format_string(op.device)
        if op.loc != Loc():
            text += " " + format_loc(op.loc)
        return text

    def _block_ops(self, block: Block, indent: str, out: list) -> None:
        for op in block.ops:
            line = indent + self.op_line(op)
            if not op.regions:
                out.append(line)
                continue
            for region in op.regions:
                out.append(line + " {")
                args = ", ".join(f"{self.value(a)}: {a.type}" for a in region.args)
                out.append(f"{indent}^bb({args}):")
                self._block_ops(region, indent + INDENT, out)
                line = indent + "}"
            out.append(line)


# ----------------------------------------------------------------------------- attributes


def format_symbol(name: str) -> str:
    """An op or function name: bare when it is an identifier, else quoted."""
    return name if _IDENT.match(name) else format_string(name)


def format_string(s: str) -> str:
    """A double-quoted string with JSON escapes (ASCII only, so any text round-trips)."""
    return json.dumps(s)


def format_bytes(b: bytes) -> str:
    """A Python-style bytes literal that always uses double quotes: ``b"a\\x00"``."""
    out = []
    for c in b:
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append({0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}.get(c, f"\\x{c:02x}"))
    return 'b"' + "".join(out) + '"'


def format_float(x: float) -> str:
    """``repr`` of a float (``inf``, ``-inf``, ``nan`` included): it reads back exactly."""
    return repr(float(x))


def format_loc(loc: Loc) -> str:
    """``loc("name")`` or ``loc("name" at "file.py":12)``."""
    if not loc.file and not loc.line:
        return f"loc({format_string(loc.name)})"
    return f"loc({format_string(loc.name)} at {format_string(loc.file)}:{loc.line})"


def format_attrs(attrs: dict) -> str:
    """``{name=value, ...}`` in name order."""
    items = []
    for name in sorted(attrs):
        value = attrs[name]
        if name in DTYPE_ATTRS and isinstance(value, str):
            value = _dtype_or_name(value)
        items.append(f"{format_symbol(name)}={format_attr(value)}")
    return "{" + ", ".join(items) + "}"


def _dtype_or_name(name: str):
    # An unknown name stays a string, so invalid IR still prints (the parser then rejects it).
    try:
        return as_dtype(name)
    except TypeError:
        return name


def format_attr(value) -> str:
    """The text of one attribute value."""
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_float(value)
    if isinstance(value, str):
        return format_string(value)
    if isinstance(value, bytes):
        return format_bytes(value)
    if isinstance(value, DType):
        return value.short
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        return format_dense(value)
    raise TypeError(f"cannot print an attribute value of type {type(value).__name__}: {value!r}")


# ----------------------------------------------------------------------------- dense arrays


def format_dense(arr: np.ndarray) -> str:
    """``dense<type>`` then nested element lists (small arrays, strings) or ``0x`` + hex bytes."""
    dtype = as_dtype(arr.dtype)
    head = f"dense<{TensorType(dtype, arr.shape)}>"
    if dtype.is_string:
        return head + _nest([format_bytes(_as_bytes(x)) for x in arr.ravel().tolist()], arr.shape)
    if arr.size <= DENSE_LIST_LIMIT:
        elements = _format_elements(arr, dtype)
        if elements is not None:
            return head + _nest(elements, arr.shape)
    return head + "0x" + little_endian_bytes(arr, dtype).hex()


def little_endian_bytes(arr: np.ndarray, dtype: DType) -> bytes:
    """The elements of `arr` as `dtype`, row-major, little-endian."""
    return np.ascontiguousarray(arr, dtype=dtype.np.newbyteorder("<")).tobytes()


def elements_to_array(elements: list, dtype: DType, shape: tuple) -> np.ndarray:
    """Builds the array that a list of parsed scalar elements denotes (the parser's half)."""
    if dtype.is_string:
        arr = np.empty(len(elements), dtype=object)
        arr[:] = elements
        return arr.reshape(shape)
    if dtype.is_floating:
        elements = [float(x) for x in elements]
    return np.array(elements, dtype=dtype.np).reshape(shape)


def _format_elements(arr: np.ndarray, dtype: DType) -> list[str] | None:
    flat = arr.ravel()
    if dtype.is_bool:
        return ["true" if x else "false" for x in flat.tolist()]
    if dtype.is_integer:
        return [str(x) for x in flat.tolist()]
    # numpy's str() is the shortest text that reads back as the same value of that width.
    # NaN payloads and signs do not survive text, so such arrays go to hex instead.
    texts = [str(x) for x in flat]
    back = elements_to_array([float(t) for t in texts], dtype, arr.shape)
    return texts if little_endian_bytes(back, dtype) == little_endian_bytes(arr, dtype) else None


def _as_bytes(x) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode("utf-8")


def _nest(elements: list[str], shape: tuple) -> str:
    if not shape:
        return elements[0]
    if shape[0] == 0:
        return "[]"
    step = len(elements) // shape[0]
    parts = [_nest(elements[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
    return "[" + ", ".join(parts) + "]"
