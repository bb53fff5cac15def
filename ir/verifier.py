"""The IR verifier: SSA scoping, terminators, op names, attributes, arities and types.

`verify` accepts a `Module` or a `Function` and raises `VerifyError` naming the
function, the offending op (as its printed line) and the problem. It checks:

- every value is defined once, and used only after its definition, in its block
  or in a region nested inside it; ``fused`` regions are isolated: their body
  sees only its own block arguments;
- a function body ends with ``return``, a region body with ``yield``, and no
  terminator appears before the end of a block;
- every op is in the op table, has exactly the attributes its `OpDef` lists,
  the operand count of its arity, and the result types its type rule computes;
- a ``fused`` op has one region whose arguments have the operand types and whose
  ``yield`` operands have the result types;
- an op's ``device``, when set, is a device name (`fuseflow.ir.devices`).
"""

from __future__ import annotations

from fuseflow.ir import opdefs
from fuseflow.ir.core import Block, Function, Module, Op
from fuseflow.ir.devices import DeviceSpec
from fuseflow.ir.printer import FunctionPrinter

TYPE_RULE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)  # bad operands or attrs


class VerifyError(ValueError):
    """Invalid IR: the message names the function, the op's printed line and the problem."""


def verify(ir: Module | Function) -> None:
    """Raises `VerifyError` at the first problem in `ir`; returns None when it is valid."""
    functions = ir.functions.values() if isinstance(ir, Module) else (ir,)
    for fn in functions:
        _FunctionVerifier(fn).run()


class _FunctionVerifier:
    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.printer = FunctionPrinter(fn)
        self.all_defs = set(self.printer.names)  # before any unknown value gets a name
        self.defined: set = set()

    def fail(self, where: Op | str, problem: str):
        text = self.printer.op_line(where) if isinstance(where, Op) else where
        return VerifyError(f"@{self.fn.name}: `{text}`: {problem}")

    def run(self) -> None:
        header = f"func @{self.fn.name}"
        self.block(self.fn.body, set(), "return", header)

    def block(self, block: Block, outer: set, terminator: str, where: Op | str, hint: str = "") -> None:
        """Checks `block`, whose ops may also use the values in `outer`; `hint` explains its scope."""
        visible = set(outer)
        for arg in block.args:
            self.define(arg, where, "block argument")
            visible.add(arg)
        if not block.ops or block.ops[-1].name != terminator:
            found = f"'{block.ops[-1].name}'" if block.ops else "an empty block"
            raise self.fail(where, f"the body must end with '{terminator}', found {found}")
        for i, op in enumerate(block.ops):
            if op.name in ("return", "yield") and i != len(block.ops) - 1:
                raise self.fail(op, "a terminator before the end of its block")
            self.operands(op, visible, hint)
            self.op(op)
            for v in op.results:
                self.define(v, op, "result")
                visible.add(v)

    def define(self, v, where: Op | str, what: str) -> None:
        if v in self.defined:
            raise self.fail(where, f"{what} {self.printer.value(v)} is defined twice")
        self.defined.add(v)

    def operands(self, op: Op, visible: set, hint: str) -> None:
        for i, v in enumerate(op.operands):
            if v in visible:
                continue
            name = self.printer.value(v)
            if v not in self.all_defs:
                problem = "is not defined in this function"
            elif v not in self.defined:
                problem = "is used before it is defined"
            else:
                problem = "is not defined in this scope" + hint
            raise self.fail(op, f"operand {i} ({name}) {problem}")

    def op(self, op: Op) -> None:
        opdef = opdefs.OPS.get(op.name)
        if opdef is None:
            raise self.fail(op, f"unknown op '{op.name}'")
        if opdef.arity is not None and len(op.operands) != opdef.arity:
            raise self.fail(op, f"{op.name} takes {opdef.arity} operand(s), found {len(op.operands)}")
        missing = sorted(set(opdef.attrs) - set(op.attrs))
        extra = sorted(set(op.attrs) - set(opdef.attrs))
        if missing:
            raise self.fail(op, f"missing attribute(s) {', '.join(missing)}")
        if extra:
            raise self.fail(op, f"unexpected attribute(s) {', '.join(extra)}")
        try:
            DeviceSpec.parse(op.device)
        except (ValueError, TypeError) as e:
            raise self.fail(op, f"bad device: {e}") from None
        if op.name == "fused":
            self.fused(op)
            return
        if op.regions:
            raise self.fail(op, f"{op.name} takes no regions, found {len(op.regions)}")
        try:
            expected = tuple(opdef.type_rule(tuple(v.type for v in op.operands), op.attrs, op.name))
        except TYPE_RULE_ERRORS as e:
            raise self.fail(op, f"the type rule rejects the operands: {e}") from None
        self.same_types(op, "result types", tuple(v.type for v in op.results), expected, "the type rule's")

    def fused(self, op: Op) -> None:
        if len(op.regions) != 1:
            raise self.fail(op, f"fused takes one region, found {len(op.regions)}")
        (region,) = op.regions
        operand_types = tuple(v.type for v in op.operands)
        self.same_types(
            op, "region argument types", tuple(a.type for a in region.args), operand_types, "the operand types"
        )
        self.block(region, set(), "yield", op, " (a fused region sees only its own arguments)")
        yielded = tuple(v.type for v in region.terminator.operands)
        self.same_types(op, "yielded types", yielded, tuple(v.type for v in op.results), "the result types")

    def same_types(self, op: Op, what: str, got: tuple, want: tuple, whose: str) -> None:
        if got != want:
            raise self.fail(
                op, f"{what} ({', '.join(map(str, got))}) differ from {whose} ({', '.join(map(str, want))})"
            )
