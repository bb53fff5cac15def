"""`Builder`: appends ops to a block, checking each against its type rule.

The frontend lowers every user op through a builder, twice: at graph-build time
over partially known types (to infer shapes and raise shape errors early, the
ops are then discarded) and at `Session.run` over the concrete types of one
signature (to make the function that gets compiled). Small values computed only
from constants (shapes, sizes, axes) are known to the builder through `known`.
"""

from __future__ import annotations

import numpy as np

from fuseflow.ir import opdefs
from fuseflow.ir.core import Block, Function, Loc, Op, Value
from fuseflow.ir.types import TensorType

KNOWN_LIMIT = 4096  # elements: larger values are never folded at build time


class Builder:
    """Builds one block of ops; `op` returns the result `Value` (or a tuple for several)."""

    def __init__(self, arg_types=()) -> None:
        self.block = Block(arg_types)
        self.loc = Loc()
        self.device = ""  # given to every op built, as `loc` is
        self._known: dict[Value, np.ndarray] = {}

    @property
    def args(self):
        return self.block.args

    def add_arg(self, type: TensorType) -> Value:
        """Appends a block argument (lowering discovers feeds and variables as it goes)."""
        v = Value(type, self.block, len(self.block.args))
        self.block.args = self.block.args + (v,)
        return v

    def op(self, name: str, *operands: Value, regions=(), **attrs):
        opdef = opdefs.get(name)
        types = opdef.type_rule(tuple(v.type for v in operands), attrs, name)
        op = Op(name, operands, attrs, types, regions, self.loc, self.device)
        self.block.ops.append(op)
        return op.results[0] if len(op.results) == 1 else op.results

    def constant(self, value, dtype=None) -> Value:
        arr = np.asarray(value, dtype=None if dtype is None else dtype.np)
        v = self.op("constant", value=arr)
        self._known[v] = v.owner.attrs["value"]
        return v

    def known(self, v: Value):
        """The value of `v` when it follows from constants alone (and is small), else None."""
        if v in self._known:
            return self._known[v]
        op = v.owner
        if not isinstance(op, Op) or op.regions or not v.type.is_static or v.type.size > KNOWN_LIMIT:
            return None
        opdef = opdefs.get(op.name)
        if opdef.stateful or opdef.reference is None:
            return None
        inputs = [self.known(x) for x in op.operands]
        if any(x is None for x in inputs):
            return None
        outs = opdef.reference(*inputs, **op.attrs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for r, o in zip(op.results, outs):
            self._known[r] = np.asarray(o)
        return self._known[v]

    def finish(self, results, name: str = "main") -> Function:
        self.block.ops.append(Op("return", results, {}, ()))
        return Function(name, self.block)

    def set_known(self, v: Value, value) -> None:
        self._known[v] = np.asarray(value)
