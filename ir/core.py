"""The SSA IR: `Value`, `Op`, `Block`, `Function`, `Module`.

Every `Value` is defined exactly once: as a result of an `Op` or as an argument
of a `Block`. Ops are immutable after construction (passes build new ops); an op
with regions (``fused``, later ``while``/``cond``) owns body blocks whose last op
is a ``yield``. A function's body block ends with ``return``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fuseflow.ir.dtypes import DType
from fuseflow.ir.types import TensorType


@dataclass(frozen=True)
class Loc:
    """Where the user created an op: its graph name and the Python file and line."""

    name: str = ""
    file: str = ""
    line: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else ""
        if self.name and where:
            return f"'{self.name}' ({where})"
        return f"'{self.name}'" if self.name else where


class Value:
    """One SSA value; `owner` is the defining `Op` or `Block`, `index` its position there."""

    __slots__ = ("index", "owner", "type")

    def __init__(self, type: TensorType, owner, index: int) -> None:
        self.type = type
        self.owner = owner
        self.index = index

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self):
        return self.type.shape

    def __repr__(self) -> str:
        return f"<Value {self.type} of {getattr(self.owner, 'name', 'block')}>"


def freeze_attr(value):
    """Attributes are immutable: lists become tuples, arrays become read-only copies."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze_attr(v) for v in value)
    if isinstance(value, np.ndarray):
        arr = np.array(value, copy=True)
        arr.flags.writeable = False
        return arr
    if isinstance(value, np.generic):
        return value.item()
    return value


def attr_equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes() \
            if a.dtype != object else a.shape == b.shape and a.tolist() == b.tolist()
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(attr_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def attr_key(value):
    """A hashable key for an attribute value (arrays by dtype, shape and bytes)."""
    if isinstance(value, np.ndarray):
        data = value.tobytes() if value.dtype != object else repr(value.tolist())
        return ("array", str(value.dtype), value.shape, data)
    if isinstance(value, tuple):
        return tuple(attr_key(v) for v in value)
    return (type(value).__name__, value)


class Block:
    """A list of ops with typed arguments; the last op is its terminator (``return``/``yield``)."""

    __slots__ = ("args", "ops")

    def __init__(self, arg_types, ops=()) -> None:
        self.args = tuple(Value(t, self, i) for i, t in enumerate(arg_types))
        self.ops = list(ops)

    @property
    def terminator(self) -> Op:
        return self.ops[-1]


class Op:
    """One operation: ``results = name(operands) {attrs} regions``; immutable once built.

    `device` is a canonical device name (`fuseflow.ir.devices`) or ``""``: before the ``place``
    pass it is what the user's ``device`` scope asked for, afterwards where the op runs (``""``
    everywhere when a function runs wholly on the host CPU).
    """

    __slots__ = ("attrs", "device", "loc", "name", "operands", "regions", "results")

    def __init__(self, name: str, operands, attrs: dict, result_types, regions=(), loc: Loc | None = None,
                 device: str = ""):
        self.name = name
        # Before placement: the device the user asked for ("" = no request); after: where it runs.
        self.device = device
        self.operands = tuple(operands)
        self.attrs = {k: freeze_attr(attrs[k]) for k in sorted(attrs)}
        self.results = tuple(Value(t, self, i) for i, t in enumerate(result_types))
        self.regions = tuple(regions)
        self.loc = loc or Loc()

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise ValueError(f"op {self.name} has {len(self.results)} results, not one")
        return self.results[0]

    def __repr__(self) -> str:
        return f"<Op {self.name} {self.loc}>"


class Function:
    """``func @name(args) -> (types) { body }``; the body block ends with ``return``."""

    __slots__ = ("body", "name")

    def __init__(self, name: str, body: Block) -> None:
        self.name = name
        self.body = body

    @property
    def args(self):
        return self.body.args

    @property
    def ops(self):
        return self.body.ops

    @property
    def results(self):
        return self.body.terminator.operands

    @property
    def result_types(self):
        return tuple(v.type for v in self.results)


class Module:
    """An ordered set of functions by name; ``@main`` is the program a session runs."""

    __slots__ = ("functions",)

    def __init__(self, functions=()) -> None:
        self.functions = {f.name: f for f in functions}

    @property
    def main(self) -> Function:
        return self.functions["main"]

    def __str__(self) -> str:
        from fuseflow.ir.printer import print_module

        return print_module(self)

    def __eq__(self, other) -> bool:
        # Structural equality: the printed form renumbers values, so equal text = equal IR.
        return isinstance(other, Module) and str(self) == str(other)

    __hash__ = None


def walk_ops(block: Block):
    """Every op in a block, nested regions included, in order."""
    for op in block.ops:
        yield op
        for region in op.regions:
            yield from walk_ops(region)
