"""`Executable`: a compiled ``@main`` as an ordered list of kernel steps over buffer slots.

Slots ``0..n_args-1`` hold the arguments, constants are placed in their slots
once at compile time, and each step reads its input slots and fills its output
slots. `run` returns the result slots; it never touches state itself (the
session commits new variable values only after `run` returned).
"""

from __future__ import annotations

from fuseflow.codegen.cpu import compile_op
from fuseflow.ir.core import Function
from fuseflow.ir.errors import InvalidArgumentError, OpError

HOST_OPS = {"constant"}


class Executable:
    """Steps ``(kernel, input slots, output slots, op)`` plus the slots of the results."""

    def __init__(self, fn: Function) -> None:
        slot_of = {v: i for i, v in enumerate(fn.args)}
        template: list = [None] * len(fn.args)
        self.steps = []
        for op in fn.ops[:-1]:
            outs = []
            for r in op.results:
                slot_of[r] = len(template)
                outs.append(len(template))
                template.append(op.attrs["value"] if op.name in HOST_OPS else None)
            if op.name not in HOST_OPS:
                ins = tuple(slot_of[v] for v in op.operands)
                self.steps.append((compile_op(op), ins, tuple(outs), op))
        self.template = template
        self.n_args = len(fn.args)
        self.result_slots = [slot_of[v] for v in fn.results]
        # Results that are arguments or constants alias the caller's arrays or the executable's own.
        self.result_aliases = [s < self.n_args or template[s] is not None for s in self.result_slots]

    def run(self, args) -> list:
        slots = self.template.copy()
        slots[: self.n_args] = args
        for kernel, ins, outs, op in self.steps:
            try:
                results = kernel(*[slots[i] for i in ins])
            except OpError:
                raise
            except Exception as e:  # a kernel's own error (e.g. an index out of range): name the op
                raise InvalidArgumentError(f"{op.name} {op.loc}: {e}", op.loc.name) from e
            for slot, value in zip(outs, results):
                slots[slot] = value
        return [slots[i] for i in self.result_slots]
