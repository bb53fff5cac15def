"""Lowering: the part of a graph that one `Session.run` needs, as an IR ``@main`` function.

``@main(feeds..., state...) -> (fetches..., new state...)``: state is every
variable the run reads before writing it and every random op's run counter.
Ops are lowered in a topological order (data and control edges) that prefers
creation order among ready ops, so a program reads and assigns variables in
the order it was written. A variable read takes the variable's value at the
time its consumer runs (TF1 reference semantics).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from fuseflow.frontend.graph import Operation, Tensor
from fuseflow.ir import dtypes as dt
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Module, Op
from fuseflow.ir.devices import HOST, canonical
from fuseflow.ir.errors import FailedPreconditionError, InvalidArgumentError
from fuseflow.ir.types import TensorType, format_shape


@dataclass
class Lowered:
    """A lowered run: the module and what its arguments and results mean."""

    module: Module
    feeds: list          # Tensors fed, in argument order
    state_in: list       # state keys (Variable or random-counter key) of the remaining arguments
    fetch_index: list    # per fetch element: index into the results, or None for an Operation
    state_out: list      # state keys of the results after the fetches

    @property
    def arg_devices(self) -> tuple:
        """Device requests of the arguments: feeds arrive on the host; variables live on their device."""
        return tuple([HOST] * len(self.feeds) + [state_device(k) for k in self.state_in])

    @property
    def result_devices(self) -> tuple:
        """Device requests of the results: fetches go to the host; new variable values to their device."""
        n_fetch = sum(i is not None for i in self.fetch_index)
        return tuple([HOST] * n_fetch + [state_device(k) for k in self.state_out])


def state_device(key) -> str:
    """Where a state value lives: a variable on its own device request ("" = the default device, a GPU
    when one is present), a random-op counter on the host (random ops run there)."""
    return HOST if isinstance(key, tuple) else canonical(key.op.device)


class LoweringBuilder(Builder):
    """Builds ``@main``; knows the session's state types and tracks state reads and writes."""

    def __init__(self, state_types: dict) -> None:
        super().__init__()
        self.state_types = dict(state_types)
        self.current: dict = {}   # state key -> IR value now
        self.state_in: list = []
        self.written: list = []
        self.versions: dict = {}  # state key -> every value it held in this run, oldest first

    def _read(self, key, missing_message):
        if key not in self.current:
            if key not in self.state_types:
                raise FailedPreconditionError(missing_message)
            self.current[key] = self.add_arg(self.state_types[key])
            self.state_in.append(key)
            self.versions[key] = [self.current[key]]
        return self.current[key]

    def variable(self, var):
        return self._read(var, f"Attempting to use uninitialized value {var.op.name} "
                               f"(variable created at {var.op.loc.file}:{var.op.loc.line}), read by {self.loc}")

    def assign(self, var, mode, value):
        if mode != "set":
            value = self.op("add" if mode == "add" else "sub", self.variable(var), value)
        self._write(var, value)
        return value

    def counter(self, key):
        self.state_types.setdefault(key, COUNTER_TYPE)  # a counter starts at 0 in every session
        value = self._read(key, "")
        self._write(key, self.op("add", value, self.constant(np.int64(1))))
        return value

    def variable_read_by(self, var, roots):
        """The latest value `var` held in this run that `roots` depend on (else its current value).

        A gradient request names a variable, but an assign scheduled between the loss and the request
        (another optimizer's update, a train op fetched with the gradients) has replaced its current
        value; the derivative is wanted at the value the loss actually read.
        """
        current = self.variable(var)
        versions = self.versions.get(var, [])
        if len(versions) < 2:
            return current
        seen, stack = set(), list(roots)
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            if isinstance(v.owner, Op):
                stack.extend(v.owner.operands)
        return next((v for v in reversed(versions) if v in seen), current)

    def _write(self, key, value) -> None:
        self.current[key] = value
        self.versions.setdefault(key, []).append(value)
        if key not in self.written:
            self.written.append(key)

    def placeholder(self, type: TensorType):
        raise InvalidArgumentError(f"You must feed a value for placeholder tensor '{self.loc.name}' with dtype "
                                   f"{type.dtype.name} and shape {format_shape(type.shape)} "
                                   f"(created at {self.loc.file}:{self.loc.line})", self.loc.name)


def needed_ops(fetches, fed) -> list[Operation]:
    """The ops the fetches depend on, through data and control edges, stopping at fed tensors."""
    seen: dict[Operation, None] = {}
    stack = [f if isinstance(f, Operation) else f.op for f in fetches if not (isinstance(f, Tensor) and f in fed)]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen[op] = None
        stack.extend(t.op for t in op.inputs if t not in fed)
        stack.extend(op.control_inputs)
    return list(seen)


def _schedule(ops: list[Operation], fed) -> list[Operation]:
    """Topological order over data and control edges; among ready ops the earliest created first."""
    members = set(ops)
    preds = {op: {t.op for t in op.inputs if t not in fed and t.op in members} | set(op.control_inputs) & members
             for op in ops}
    users: dict[Operation, list] = {op: [] for op in ops}
    for op, ps in preds.items():
        for p in ps:
            users[p].append(op)
    waiting = {op: len(ps) for op, ps in preds.items()}
    ready = [(op.index, op) for op, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, op = heapq.heappop(ready)
        order.append(op)
        for u in users[op]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (u.index, u))
    return order


def lower(fetches, feed_types: dict, state_types: dict) -> Lowered:
    """Lowers the graph part that `fetches` (Tensors/Operations) need, with `feed_types` {Tensor: TensorType}."""
    b = LoweringBuilder(state_types)
    feeds = sorted(feed_types, key=lambda t: (t.op.index, t.value_index))
    values: dict[Tensor, object] = {t: b.add_arg(feed_types[t]) for t in feeds}

    def value_of(t: Tensor):
        if t in values:
            return values[t]
        return b.variable(t.variable)  # a VariableV2 read, taken when its consumer runs

    for op in _schedule(needed_ops(fetches, values), values):
        if op.type == "VariableV2":
            continue
        b.loc, b.device = op.loc, canonical(op.device)
        try:
            results = op.lower(b, *[value_of(t) for t in op.inputs], **op.attrs)
        except (ValueError, TypeError, IndexError) as e:
            raise type(e)(f"{op.type} {op.loc}: {e}") from None
        results = results if isinstance(results, tuple) else (results,)
        for t, v in zip(op.outputs, results):
            if t not in values:
                values[t] = v
    outputs, fetch_index = [], []
    for f in fetches:
        if isinstance(f, Operation):
            fetch_index.append(None)
            continue
        fetch_index.append(len(outputs))
        outputs.append(value_of(f))
    state_out = list(b.written)
    fn = b.finish(outputs + [b.current[k] for k in state_out])
    return Lowered(Module([fn]), feeds, list(b.state_in), fetch_index, state_out)


COUNTER_TYPE = TensorType(dt.int64, ())
