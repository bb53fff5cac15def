"""The verifier accepts valid IR and rejects each kind of invalid IR with a message naming the op."""

from __future__ import annotations

import numpy as np
import pytest

from fuseflow.ir import dtypes as dt
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Block, Function, Module, Op
from fuseflow.ir.parser import parse_module
from fuseflow.ir.types import TensorType
from fuseflow.ir.verifier import VerifyError, verify


def f32(*shape):
    return TensorType(dt.float32, shape)


def region(arg_types, make_ops) -> Block:
    """A block over `arg_types` whose ops `make_ops(args)` returns."""
    block = Block(arg_types)
    block.ops += make_ops(block.args)
    return block


def fused(operands, result_types, body: Block) -> Op:
    return Op("fused", operands, {}, result_types, (body,))


def mul_yield(args):
    mul = Op("mul", args[:2], {}, (args[0].type,))
    return [mul, Op("yield", mul.results, {}, ())]


ARG_TYPES = (f32(2, 3), f32(3))


def with_ops(*make_ops, arg_types=ARG_TYPES) -> Function:
    """A function over `arg_types` whose body is `make_ops(args)` (no implicit return)."""
    return Function("main", region(arg_types, lambda args: [op for make in make_ops for op in make(args)]))


def rejects(ir, *words):
    with pytest.raises(VerifyError) as info:
        verify(ir)
    assert isinstance(info.value, ValueError)
    for w in words:
        assert w in str(info.value)
    return str(info.value)


def valid_module() -> Module:
    b = Builder([f32(2, 3), f32(3)])
    x, y = b.args
    s = b.op("add", x, y)
    r = b.op("reduce_sum", s, axes=(1,), keepdims=False)
    c = b.constant(np.ones(2, np.float32))
    k = fused((x, y), (f32(2, 3),), region((x.type, y.type), mul_yield))
    b.block.ops.append(k)
    return Module([b.finish([b.op("add", r, c), k.result])])


# ----------------------------------------------------------------------------- valid IR


def test_accepts_valid_module_and_function():
    verify(valid_module())
    verify(valid_module().main)


def test_accepts_parsed_text():
    verify(parse_module(str(valid_module())))


# ----------------------------------------------------------------------------- scoping


def test_rejects_a_value_used_before_its_definition():
    def ops(args):
        neg = Op("neg", args[:1], {}, (f32(2, 3),))
        exp = Op("exp", neg.results, {}, (f32(2, 3),))
        return [exp, neg, Op("return", exp.results, {}, ())]

    message = rejects(with_ops(ops), "operand 0 (%3) is used before it is defined")
    assert "`%2 = exp %3 : f32[2,3]`" in message


def test_rejects_a_value_from_another_function():
    stranger = Block([f32(2, 3)]).args[0]
    rejects(with_ops(lambda a: [Op("return", (stranger,), {}, ())]), "`return %?0`", "not defined in this function")


def test_rejects_a_value_defined_in_a_sibling_region():
    def ops(args):
        first = fused(args, (f32(2, 3),), region((f32(2, 3), f32(3)), mul_yield))
        inner = first.regions[0].ops[0].result
        second = fused(args, (f32(2, 3),), region((f32(2, 3), f32(3)), lambda a: [Op("yield", (inner,), {}, ())]))
        return [first, second, Op("return", second.results, {}, ())]

    rejects(with_ops(ops), "`yield %5`", "operand 0 (%5) is not defined in this scope")


def test_rejects_a_fused_region_that_reads_an_outer_value():
    def ops(args):
        body = region((f32(2, 3), f32(3)), lambda a: [Op("mul", (a[0], args[1]), {}, (f32(2, 3),))])
        body.ops.append(Op("yield", body.ops[0].results, {}, ()))
        k = fused(args, (f32(2, 3),), body)
        return [k, Op("return", k.results, {}, ())]

    rejects(with_ops(ops), "`%5 = mul %3, %1 : f32[2,3]`", "operand 1 (%1)", "fused region sees only its own")


def test_rejects_a_value_defined_twice():
    def ops(args):
        neg = Op("neg", args[:1], {}, (f32(2, 3),))
        return [neg, neg, Op("return", neg.results, {}, ())]

    rejects(with_ops(ops), "`%2 = neg %0 : f32[2,3]`", "result %2 is defined twice")


# ----------------------------------------------------------------------------- terminators


def test_rejects_a_function_without_return():
    rejects(with_ops(lambda a: [Op("neg", a[:1], {}, (f32(2, 3),))]), "func @main", "must end with 'return'")


def test_rejects_an_empty_function_body():
    rejects(with_ops(), "must end with 'return', found an empty block")


def test_rejects_a_function_ending_with_yield():
    rejects(with_ops(lambda a: [Op("yield", a, {}, ())]), "must end with 'return', found 'yield'")


def test_rejects_a_region_ending_with_return():
    def ops(args):
        k = fused(args, (), region((f32(2, 3), f32(3)), lambda a: [Op("return", (), {}, ())]))
        return [k, Op("return", (), {}, ())]

    rejects(with_ops(ops), "`fused %0, %1`", "must end with 'yield', found 'return'")


def test_rejects_a_terminator_before_the_end():
    rejects(
        with_ops(lambda a: [Op("return", a, {}, ()), Op("return", a, {}, ())]),
        "`return %0, %1`",
        "terminator before the end",
    )


# ----------------------------------------------------------------------------- op facts


def ending(*ops_of_args):
    """A function whose ops are built by `ops_of_args(args)` and returns the last op's results."""

    def ops(args):
        made = [make(args) for make in ops_of_args]
        return made + [Op("return", made[-1].results, {}, ())]

    return with_ops(ops)


def test_rejects_an_unknown_op():
    rejects(ending(lambda a: Op("frobnicate", a, {}, (f32(2, 3),))), "`%2 = frobnicate %0, %1", "unknown op")


def test_rejects_a_missing_attribute():
    rejects(
        ending(lambda a: Op("reduce_sum", a[:1], {"axes": (1,)}, (f32(2),))),
        "reduce_sum %0 {axes=[1]}",
        "missing attribute(s) keepdims",
    )


def test_rejects_an_extra_attribute():
    rejects(ending(lambda a: Op("neg", a[:1], {"fast": True}, (f32(2, 3),))), "unexpected attribute(s) fast")


def test_rejects_a_result_type_the_rule_does_not_compute():
    rejects(
        ending(lambda a: Op("add", a, {}, (f32(9),))),
        "`%2 = add %0, %1 : f32[9]`",
        "result types (f32[9]) differ from the type rule's (f32[2,3])",
    )


def test_rejects_operands_the_type_rule_refuses():
    i32 = TensorType(dt.int32, (3,))
    fn = with_ops(lambda a: [Op("add", a, {}, (f32(2, 3),)), Op("return", (), {}, ())], arg_types=(f32(2, 3), i32))
    rejects(fn, "the type rule rejects the operands", "float32 and int32")


def test_rejects_a_wrong_arity():
    rejects(ending(lambda a: Op("neg", a, {}, (f32(2, 3),))), "neg takes 1 operand(s), found 2")


def test_rejects_a_region_on_an_op_without_regions():
    rejects(ending(lambda a: Op("neg", a[:1], {}, (f32(2, 3),), (region((), lambda _: []),))), "neg takes no regions")


# ----------------------------------------------------------------------------- fused


def test_rejects_fused_region_arguments_that_differ_from_the_operands():
    rejects(
        ending(lambda a: fused(a, (f32(2, 3),), region((f32(2, 3), f32(2, 3)), mul_yield))),
        "region argument types (f32[2,3], f32[2,3]) differ from the operand types (f32[2,3], f32[3])",
    )


def test_rejects_fused_yields_that_differ_from_the_results():
    rejects(
        ending(lambda a: fused(a, (f32(3),), region((f32(2, 3), f32(3)), mul_yield))),
        "`%2 = fused %0, %1 : f32[3]`",
        "yielded types (f32[2,3]) differ from the result types (f32[3])",
    )


def test_rejects_fused_without_a_region():
    rejects(ending(lambda a: Op("fused", a, {}, (f32(2, 3),))), "fused takes one region, found 0")
