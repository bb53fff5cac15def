"""Golden IR-in/IR-out tests, one group per pass, each checking only what its pass owns.

Every input is IR text; `irtest.apply` runs one pass and checks that its output verifies and
round-trips through the printer and parser. Rewrites leave dead ops for DCE, so the golden
outputs of simplify and fold are compared with dead ops dropped (``drop_dead=True``).
"""

from __future__ import annotations

import numpy as np
import pytest
from irtest import apply, assert_ir, check_ir, fused_ops, op_names, region_op_names, same_values

from fuseflow.ir import interp
from fuseflow.ir.parser import parse_module
from fuseflow.passes.cse import cse
from fuseflow.passes.dce import dce
from fuseflow.passes.fold import FOLD_LIMIT, fold
from fuseflow.passes.fuse import fuse
from fuseflow.passes.gemm import gemm
from fuseflow.passes.simplify import simplify

X45 = "func @main(%x: f32[4,5]) -> (f32[4,5]) {{\n{body}\n}}"


def unary(body: str, arg: str = "f32[4,5]", result: str = "f32[4,5]") -> str:
    """A one-argument ``@main`` whose body is `body` (lines of IR ending with ``return``)."""
    return f"func @main(%x: {arg}) -> ({result}) {{\n{body}\n}}"


IDENTITY = unary("  return %x")

# ----------------------------------------------------------------------------- simplify


@pytest.mark.parametrize(
    "body",
    [
        # x*1 -> x
        "%c = constant {value=dense<f32[]>1.0} : f32[]\n%y = mul %x, %c : f32[4,5]",
        # 1*x -> x
        "%c = constant {value=dense<f32[]>1.0} : f32[]\n%y = mul %c, %x : f32[4,5]",
        # x*1 -> x, with a constant of ones as large as x
        "%c = constant {value=dense<f32[5]>[1.0, 1.0, 1.0, 1.0, 1.0]} : f32[5]\n%y = mul %x, %c : f32[4,5]",
        # x/1 -> x
        "%c = constant {value=dense<f32[]>1.0} : f32[]\n%y = div %x, %c : f32[4,5]",
        # x-(+0.0) -> x (exact: -0.0 - +0.0 = -0.0)
        "%c = constant {value=dense<f32[]>0.0} : f32[]\n%y = sub %x, %c : f32[4,5]",
        # x+(-0.0) -> x (exact: -0.0 + -0.0 = -0.0)
        "%c = constant {value=dense<f32[]>-0.0} : f32[]\n%y = add %x, %c : f32[4,5]",
        # (-0.0)+x -> x
        "%c = constant {value=dense<f32[]>-0.0} : f32[]\n%y = add %c, %x : f32[4,5]",
        # neg(neg x) -> x
        "%a = neg %x : f32[4,5]\n%y = neg %a : f32[4,5]",
        # cast to the same dtype -> x
        "%y = cast %x {dtype=f32} : f32[4,5]",
        # reshape to its own shape -> x
        "%y = reshape %x {shape=[4, 5]} : f32[4,5]",
        # transpose(transpose x) with the identity as composed perm -> x
        "%a = transpose %x {perm=[1, 0]} : f32[5,4]\n%y = transpose %a {perm=[1, 0]} : f32[4,5]",
        # reduce over no axes -> x (max, min and prod: exact for floats)
        "%y = reduce_max %x {axes=[], keepdims=true} : f32[4,5]",
        "%y = reduce_min %x {axes=[], keepdims=false} : f32[4,5]",
        "%y = reduce_prod %x {axes=[], keepdims=false} : f32[4,5]",
    ],
    ids=["x*1", "1*x", "x*ones", "x/1", "x-0", "x+-0", "-0+x", "neg-neg", "cast-same", "reshape-same",
         "transpose-identity", "reduce-max-no-axes", "reduce-min-no-axes", "reduce-prod-no-axes"],
)
def test_simplify_identity_fires(body):
    out = apply(simplify, unary(f"{body}\nreturn %y"))
    assert_ir(out, IDENTITY, drop_dead=True)


def test_simplify_int_reduction_over_no_axes_fires():
    text = """
    func @main(%i: i32[4]) -> (i32[4], i32[4]) {
      %a = reduce_sum %i {axes=[], keepdims=false} : i32[4]
      %b = reduce_mean %i {axes=[], keepdims=true} : i32[4]
      return %a, %b
    }"""
    assert_ir(apply(simplify, text), "func @main(%i: i32[4]) -> (i32[4], i32[4]) { return %i, %i }")


def test_simplify_int_add_zero_fires():
    # ints have one zero: x+0 -> x and 0+x -> x
    text = """
    func @main(%i: i32[4]) -> (i32[4], i32[4], i32[4]) {
      %z = constant {value=dense<i32[]>0} : i32[]
      %a = add %i, %z : i32[4]
      %b = add %z, %i : i32[4]
      %c = sub %i, %z : i32[4]
      return %a, %b, %c
    }"""
    out = apply(simplify, text)
    assert_ir(out, "func @main(%i: i32[4]) -> (i32[4], i32[4], i32[4]) { return %i, %i, %i }", drop_dead=True)


@pytest.mark.parametrize(
    "body",
    [
        # x + (+0.0) is not x: -0.0 + +0.0 = +0.0
        "%c = constant {value=dense<f32[]>0.0} : f32[]\n%y = add %x, %c : f32[4,5]",
        # x - (-0.0) is not x: -0.0 - -0.0 = +0.0
        "%c = constant {value=dense<f32[]>-0.0} : f32[]\n%y = sub %x, %c : f32[4,5]",
        # x * 0 is not 0 (NaN, Inf, -0.0)
        "%c = constant {value=dense<f32[]>0.0} : f32[]\n%y = mul %x, %c : f32[4,5]",
        # exp(log x) is not x (x < 0, rounding)
        "%a = log %x : f32[4,5]\n%y = exp %a : f32[4,5]",
        # x*c with c not all ones
        "%c = constant {value=dense<f32[2]>[1.0, 2.0]} : f32[2]\n%y = mul %x, %c : f32[4,2]",
        # a float sum over no axes is x + 0.0, not x (-0.0 becomes +0.0)
        "%y = reduce_sum %x {axes=[], keepdims=false} : f32[4,5]",
        "%y = reduce_mean %x {axes=[], keepdims=true} : f32[4,5]",
    ],
    ids=["x+0", "x-(-0)", "x*0", "exp-log", "x*(1,2)", "sum-no-axes", "mean-no-axes"],
)
def test_simplify_inexact_rewrite_does_not_fire(body):
    shape = "f32[4,2]" if "f32[2]" in body else "f32[4,5]"
    text = unary(f"{body}\nreturn %y", arg=shape, result=shape)
    out = apply(simplify, text)
    assert_ir(out, text)


def test_simplify_broadcasting_mul_by_ones_does_not_fire():
    # x*1 -> x would change the result's shape from f32[4,5] to f32[5]
    text = """
    func @main(%x: f32[5]) -> (f32[4,5]) {
      %c = constant {value=dense<f32[4,5]>0xHEX} : f32[4,5]
      %y = mul %x, %c : f32[4,5]
      return %y
    }""".replace("HEX", np.ones((4, 5), "<f4").tobytes().hex())
    out = apply(simplify, text)
    assert_ir(out, text)
    assert op_names(out) == ["constant", "mul"]


def test_simplify_reshape_of_reshape_composes():
    text = unary("""
      %a = reshape %x {shape=[20]} : f32[20]
      %y = reshape %a {shape=[2, 10]} : f32[2,10]
      return %y""", result="f32[2,10]")
    out = apply(simplify, text)
    assert_ir(out, unary("""
      %y = reshape %x {shape=[2, 10]} : f32[2,10]
      return %y""", result="f32[2,10]"), drop_dead=True)


def test_simplify_reshape_of_reshape_back_to_the_operand_shape_is_the_operand():
    # reshape(reshape x) -> reshape x, and that reshape to x's own shape -> x
    text = unary("""
      %a = reshape %x {shape=[20]} : f32[20]
      %y = reshape %a {shape=[4, 5]} : f32[4,5]
      return %y""")
    assert_ir(apply(simplify, text), IDENTITY, drop_dead=True)


def test_simplify_transpose_of_transpose_composes_perms():
    # result dim i = inner dim perm[i] = x dim inner_perm[perm[i]]: [1,0,2] then [0,2,1] -> [1,2,0]
    text = """
    func @main(%x: f32[2,3,4]) -> (f32[3,4,2]) {
      %a = transpose %x {perm=[1, 0, 2]} : f32[3,2,4]
      %y = transpose %a {perm=[0, 2, 1]} : f32[3,4,2]
      return %y
    }"""
    out = apply(simplify, text)
    assert_ir(out, """
    func @main(%x: f32[2,3,4]) -> (f32[3,4,2]) {
      %y = transpose %x {perm=[1, 2, 0]} : f32[3,4,2]
      return %y
    }""", drop_dead=True)
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    same_values(interp.run(out, x), interp.run(parse_module(text), x))


def test_simplify_square_becomes_mul():
    text = unary("""
      %c = constant {value=dense<f32[]>2.0} : f32[]
      %y = pow %x, %c : f32[4,5]
      return %y""")
    assert_ir(apply(simplify, text), unary("  %y = mul %x, %x : f32[4,5]\n  return %y"), drop_dead=True)


def test_simplify_other_powers_stay():
    text = unary("""
      %c = constant {value=dense<f32[]>3.0} : f32[]
      %y = pow %x, %c : f32[4,5]
      return %y""")
    assert_ir(apply(simplify, text), text)


@pytest.mark.parametrize("op", ["add", "mul", "maximum", "minimum", "equal"])
def test_simplify_moves_the_constant_of_a_commutative_op_last(op):
    result = "bool[4,5]" if op == "equal" else "f32[4,5]"
    before = unary(f"""
      %c = constant {{value=dense<f32[]>3.0}} : f32[]
      %y = {op} %c, %x : {result}
      return %y""", result=result)
    after = unary(f"""
      %c = constant {{value=dense<f32[]>3.0}} : f32[]
      %y = {op} %x, %c : {result}
      return %y""", result=result)
    assert_ir(apply(simplify, before), after, drop_dead=True)


def test_simplify_keeps_the_order_of_non_commutative_ops():
    text = unary("""
      %c = constant {value=dense<f32[]>3.0} : f32[]
      %y = sub %c, %x : f32[4,5]
      %z = div %c, %y : f32[4,5]
      return %z""")
    assert_ir(apply(simplify, text), text)


def test_simplify_orders_non_constant_operands_by_definition():
    # The docstring's canonical form: non-constants first, in definition order.
    text = """
    func @main(%x: f32[4,5], %y: f32[4,5]) -> (f32[4,5]) {
      %a = exp %x : f32[4,5]
      %b = exp %y : f32[4,5]
      %c = add %b, %a : f32[4,5]
      return %c
    }"""
    assert_ir(apply(simplify, text), """
    func @main(%x: f32[4,5], %y: f32[4,5]) -> (f32[4,5]) {
      %a = exp %x : f32[4,5]
      %b = exp %y : f32[4,5]
      %c = add %a, %b : f32[4,5]
      return %c
    }""")


def test_simplify_is_a_fixed_point():
    text = """
    func @main(%x: f32[4,5]) -> (f32[5,4]) {
      %one = constant {value=dense<f32[]>1.0} : f32[]
      %two = constant {value=dense<f32[]>2.0} : f32[]
      %a = mul %one, %x : f32[4,5]
      %b = neg %a : f32[4,5]
      %c = neg %b : f32[4,5]
      %d = pow %c, %two : f32[4,5]
      %e = add %two, %d : f32[4,5]
      %f = transpose %e {perm=[1, 0]} : f32[5,4]
      return %f
    }"""
    once = apply(simplify, text)
    assert_ir(apply(simplify, str(once)), str(once))
    x = np.linspace(-3, 3, 20, dtype=np.float32).reshape(4, 5)
    same_values(interp.run(once, x), interp.run(parse_module(text), x))


# ----------------------------------------------------------------------------- fold


def test_fold_ops_over_constants():
    text = """
    func @main(%x: f32[2]) -> (f32[2], f32[2]) {
      %a = constant {value=dense<f32[2]>[1.0, 2.0]} : f32[2]
      %b = constant {value=dense<f32[]>3.0} : f32[]
      %c = add %a, %b : f32[2]
      %d = mul %c, %c : f32[2]
      %e = neg %d : f32[2]
      %s = reduce_sum %e {axes=[0], keepdims=true} : f32[1]
      %f = sub %e, %s : f32[2]
      %g = add %x, %f : f32[2]
      return %f, %g
    }"""
    out = apply(fold, text)
    assert_ir(out, """
    func @main(%x: f32[2]) -> (f32[2], f32[2]) {
      %f = constant {value=dense<f32[2]>[25.0, 16.0]} : f32[2]
      %g = add %x, %f : f32[2]
      return %f, %g
    }""", drop_dead=True)


def test_fold_keeps_dtypes_and_casts():
    text = """
    func @main() -> (i32[3], f64[], bool[3]) {
      %a = constant {value=dense<f32[3]>[1.5, -2.5, 7.9]} : f32[3]
      %b = cast %a {dtype=i32} : i32[3]
      %c = constant {value=dense<f64[]>0.5} : f64[]
      %d = exp %c : f64[]
      %e = less %b, %b : bool[3]
      return %b, %d, %e
    }"""
    out = apply(fold, text)
    assert op_names(dce(out)) == ["constant"] * 3
    same_values(interp.run(out), interp.run(parse_module(text)))


def test_fold_stops_at_the_size_cap():
    def broadcast(n):
        return f"""
        func @main() -> (f32[{n}]) {{
          %c = constant {{value=dense<f32[]>2.0}} : f32[]
          %b = broadcast_to %c {{shape=[{n}]}} : f32[{n}]
          return %b
        }}"""

    assert op_names(dce(apply(fold, broadcast(FOLD_LIMIT)))) == ["constant"]
    huge = broadcast(FOLD_LIMIT + 1)
    assert_ir(apply(fold, huge), huge)


def test_fold_leaves_a_huge_2d_broadcast_alone():
    text = """
    func @main() -> (f32[1024,1024]) {
      %c = constant {value=dense<f32[]>2.0} : f32[]
      %b = broadcast_to %c {shape=[1024, 1024]} : f32[1024,1024]
      return %b
    }"""
    assert_ir(apply(fold, text), text)


def test_fold_never_folds_random_ops():
    text = """
    func @main() -> (f32[3], f32[3]) {
      %n = constant {value=dense<i64[]>0} : i64[]
      %u = random_uniform %n {dtype=f32, seed=1, seed2=2, shape=[3]} : f32[3]
      %v = random_normal %n {dtype=f32, seed=1, seed2=2, shape=[3]} : f32[3]
      return %u, %v
    }"""
    assert_ir(apply(fold, text), text)


def test_fold_leaves_an_op_whose_reference_raises():
    # an out-of-range gather is an error at run time, not at compile time
    text = """
    func @main() -> (f32[1]) {
      %p = constant {value=dense<f32[2]>[1.0, 2.0]} : f32[2]
      %i = constant {value=dense<i32[1]>[7]} : i32[1]
      %g = gather %p, %i {axis=0} : f32[1]
      return %g
    }"""
    assert_ir(apply(fold, text), text)


def test_fold_leaves_ops_with_a_non_constant_operand():
    text = unary("""
      %c = constant {value=dense<f32[]>2.0} : f32[]
      %y = mul %x, %c : f32[4,5]
      return %y""")
    assert_ir(apply(fold, text), text)


# ----------------------------------------------------------------------------- cse


def test_cse_merges_duplicate_pure_ops():
    text = """
    func @main(%x: f32[4,5]) -> (f32[4,5]) {
      %a = exp %x : f32[4,5]
      %b = exp %x : f32[4,5]
      %c = add %a, %b : f32[4,5]
      %d = reduce_sum %c {axes=[1], keepdims=true} : f32[4,1]
      %e = reduce_sum %c {axes=[1], keepdims=true} : f32[4,1]
      %f = sub %d, %e : f32[4,1]
      %g = mul %c, %f : f32[4,5]
      return %g
    }"""
    assert_ir(apply(cse, text), """
    func @main(%x: f32[4,5]) -> (f32[4,5]) {
      %a = exp %x : f32[4,5]
      %c = add %a, %a : f32[4,5]
      %d = reduce_sum %c {axes=[1], keepdims=true} : f32[4,1]
      %f = sub %d, %d : f32[4,1]
      %g = mul %c, %f : f32[4,5]
      return %g
    }""")


def test_cse_merges_commutative_ops_with_swapped_operands():
    text = """
    func @main(%a: f32[4,5], %b: f32[5]) -> (f32[4,5]) {
      %x = add %a, %b : f32[4,5]
      %y = add %b, %a : f32[4,5]
      %z = mul %x, %y : f32[4,5]
      return %z
    }"""
    out = apply(cse, text)
    assert_ir(out, """
    func @main(%a: f32[4,5], %b: f32[5]) -> (f32[4,5]) {
      %x = add %a, %b : f32[4,5]
      %z = mul %x, %x : f32[4,5]
      return %z
    }""")


def test_cse_keeps_non_commutative_ops_with_swapped_operands():
    text = """
    func @main(%a: f32[4,5], %b: f32[4,5]) -> (f32[4,5]) {
      %x = sub %a, %b : f32[4,5]
      %y = sub %b, %a : f32[4,5]
      %z = mul %x, %y : f32[4,5]
      return %z
    }"""
    assert_ir(apply(cse, text), text)


def test_cse_keeps_ops_that_differ_in_attributes():
    text = """
    func @main(%x: f32[4,4]) -> (f32[4], f32[4]) {
      %a = reduce_sum %x {axes=[0], keepdims=false} : f32[4]
      %b = reduce_sum %x {axes=[1], keepdims=false} : f32[4]
      return %a, %b
    }"""
    assert_ir(apply(cse, text), text)


def test_cse_merges_equal_constants_only():
    text = """
    func @main(%x: f32[2]) -> (f32[2]) {
      %a = constant {value=dense<f32[2]>[1.0, 2.0]} : f32[2]
      %b = constant {value=dense<f32[2]>[1.0, 2.0]} : f32[2]
      %c = constant {value=dense<f32[2]>[1.0, 3.0]} : f32[2]
      %d = constant {value=dense<f32[]>0.0} : f32[]
      %e = constant {value=dense<f32[]>-0.0} : f32[]
      %p = add %x, %a : f32[2]
      %q = add %p, %b : f32[2]
      %r = add %q, %c : f32[2]
      %s = add %r, %d : f32[2]
      %t = add %s, %e : f32[2]
      return %t
    }"""
    out = apply(cse, text)
    assert op_names(out).count("constant") == 4  # 0.0 and -0.0 differ in their bits
    same_values(interp.run(out, np.array([-0.0, 1.0], np.float32)),
                interp.run(parse_module(text), np.array([-0.0, 1.0], np.float32)), zero_sign=True)


def test_cse_never_merges_random_ops():
    text = """
    func @main() -> (f32[3]) {
      %n = constant {value=dense<i64[]>0} : i64[]
      %u = random_uniform %n {dtype=f32, seed=1, seed2=2, shape=[3]} : f32[3]
      %v = random_uniform %n {dtype=f32, seed=1, seed2=2, shape=[3]} : f32[3]
      %w = sub %u, %v : f32[3]
      return %w
    }"""
    out = apply(cse, text)
    assert op_names(out).count("random_uniform") == 2
    assert_ir(out, text)


# ----------------------------------------------------------------------------- dce


def test_dce_removes_unused_ops_and_keeps_used_ones():
    text = """
    func @main(%x: f32[4,5], %y: f32[4,5]) -> (f32[4,5]) {
      %c = constant {value=dense<f32[]>2.0} : f32[]
      %unused_const = constant {value=dense<f32[]>3.0} : f32[]
      %a = exp %x : f32[4,5]
      %dead = tanh %a : f32[4,5]
      %dead2 = mul %dead, %y : f32[4,5]
      %b = mul %a, %c : f32[4,5]
      return %b
    }"""
    assert_ir(apply(dce, text), """
    func @main(%x: f32[4,5], %y: f32[4,5]) -> (f32[4,5]) {
      %c = constant {value=dense<f32[]>2.0} : f32[]
      %a = exp %x : f32[4,5]
      %b = mul %a, %c : f32[4,5]
      return %b
    }""")


def test_dce_keeps_everything_that_is_returned():
    text = """
    func @main(%x: f32[4,5]) -> (f32[4,5], f32[4,1], f32[4,5]) {
      %a = exp %x : f32[4,5]
      %s = reduce_max %a {axes=[1], keepdims=true} : f32[4,1]
      %b = sub %a, %s : f32[4,5]
      return %b, %s, %x
    }"""
    assert_ir(apply(dce, text), text)


def test_dce_removes_unused_random_ops_and_fused_ops():
    text = """
    func @main(%x: f32[3]) -> (f32[3]) {
      %n = constant {value=dense<i64[]>0} : i64[]
      %u = random_uniform %n {dtype=f32, seed=1, seed2=2, shape=[3]} : f32[3]
      %f = fused %x : f32[3] {
      ^bb(%a: f32[3]):
        %b = exp %a : f32[3]
        yield %b
      }
      return %x
    }"""
    assert_ir(apply(dce, text), "func @main(%x: f32[3]) -> (f32[3]) { return %x }")


# ----------------------------------------------------------------------------- fuse


def assert_fuse_preserves(text: str, *args) -> None:
    """fuse(text) gives the interpreter's results on `args` exactly."""
    module = parse_module(text)
    same_values(interp.run(check_ir(fuse(module)), *args), interp.run(module, *args), zero_sign=True)


def test_fuse_elementwise_chain_is_one_fused_op():
    text = """
    func @main(%x: f32[4,5], %y: f32[5]) -> (f32[4,5]) {
      %c = constant {value=dense<f32[]>2.0} : f32[]
      %a = exp %x : f32[4,5]
      %b = mul %a, %y : f32[4,5]
      %d = add %b, %c : f32[4,5]
      %e = tanh %d : f32[4,5]
      return %e
    }"""
    out = apply(fuse, text)
    assert_ir(out, """
    func @main(%x: f32[4,5], %y: f32[5]) -> (f32[4,5]) {
      %r = fused %x, %y : f32[4,5] {
      ^bb(%bx: f32[4,5], %by: f32[5]):
        %a = exp %bx : f32[4,5]
        %b = mul %a, %by : f32[4,5]
        %c = constant {value=dense<f32[]>2.0} : f32[]
        %d = add %b, %c : f32[4,5]
        %e = tanh %d : f32[4,5]
        yield %e
      }
      return %r
    }""")
    x = np.linspace(-2, 2, 20, dtype=np.float32).reshape(4, 5)
    assert_fuse_preserves(text, x, np.arange(5, dtype=np.float32))


def test_fuse_does_not_pull_in_a_producer_read_by_broadcasting():
    text = """
    func @main(%x: f32[4,5], %v: f32[5]) -> (f32[4,5]) {
      %a = exp %v : f32[5]
      %b = neg %a : f32[5]
      %c = add %x, %b : f32[4,5]
      %d = tanh %c : f32[4,5]
      return %d
    }"""
    out = apply(fuse, text)
    small, big = fused_ops(out)
    assert region_op_names(small) == ["exp", "neg"] and small.results[0].type.shape == (5,)
    assert region_op_names(big) == ["add", "tanh"]
    assert big.operands[1] is small.results[0]
    assert_fuse_preserves(text, np.ones((4, 5), np.float32), np.arange(5, dtype=np.float32))


def test_fuse_keeps_matmul_outside_and_fuses_its_epilogue():
    text = """
    func @main(%x: f32[8,16], %w: f32[16,4], %b: f32[4]) -> (f32[8,4]) {
      %m = matmul %x, %w {transpose_a=false, transpose_b=false} : f32[8,4]
      %z = constant {value=dense<f32[]>0.0} : f32[]
      %a = add %m, %b : f32[8,4]
      %r = maximum %a, %z : f32[8,4]
      return %r
    }"""
    out = apply(fuse, text)
    assert op_names(out) == ["matmul", "fused"]
    (epilogue,) = fused_ops(out)
    assert region_op_names(epilogue) == ["add", "maximum"]
    assert len(epilogue.results) == 1
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(np.float32) for s in [(8, 16), (16, 4), (4,)]]
    assert_fuse_preserves(text, *args)


SOFTMAX = """
func @main(%x: f32[8,10]) -> (f32[8,10]) {
  %m = reduce_max %x {axes=[1], keepdims=true} : f32[8,1]
  %s = sub %x, %m : f32[8,10]
  %e = exp %s : f32[8,10]
  %t = reduce_sum %e {axes=[1], keepdims=true} : f32[8,1]
  %y = div %e, %t : f32[8,10]
  return %y
}"""

LOG_SOFTMAX = """
func @main(%x: f32[8,10]) -> (f32[8,10]) {
  %m = reduce_max %x {axes=[1], keepdims=true} : f32[8,1]
  %s = sub %x, %m : f32[8,10]
  %e = exp %s : f32[8,10]
  %t = reduce_sum %e {axes=[1], keepdims=true} : f32[8,1]
  %l = log %t : f32[8,1]
  %y = sub %s, %l : f32[8,10]
  return %y
}"""


@pytest.mark.parametrize("text", [SOFTMAX, LOG_SOFTMAX], ids=["softmax", "log_softmax"])
def test_fuse_row_softmax_is_one_fused_op(text):
    out = apply(fuse, text)
    assert op_names(out) == ["fused"]
    (kernel,) = fused_ops(out)
    assert len(kernel.results) == 1 and kernel.operands == out.main.args
    names = region_op_names(kernel)
    assert names.count("reduce_max") == 1 and names.count("reduce_sum") == 1
    x = np.random.default_rng(1).standard_normal((8, 10)).astype(np.float32) * 10
    x[0, 0], x[1, :] = np.inf, -np.inf
    assert_fuse_preserves(text, x)


def test_fuse_multi_output_when_an_inner_value_is_also_returned():
    text = """
    func @main(%x: f32[4,5]) -> (f32[4,5], f32[4,5]) {
      %a = exp %x : f32[4,5]
      %b = tanh %a : f32[4,5]
      %c = mul %b, %a : f32[4,5]
      return %c, %a
    }"""
    out = apply(fuse, text)
    (kernel,) = fused_ops(out)
    assert op_names(out) == ["fused"]
    assert region_op_names(kernel) == ["exp", "tanh", "mul"]
    assert len(kernel.results) == 2
    assert set(out.main.results) == set(kernel.results)
    assert_fuse_preserves(text, np.linspace(-3, 3, 20, dtype=np.float32).reshape(4, 5))


def test_fuse_reduction_result_used_outside_is_an_output():
    text = """
    func @main(%x: f32[4,5]) -> (f32[4,5], f32[4]) {
      %a = exp %x : f32[4,5]
      %s = reduce_sum %a {axes=[1], keepdims=false} : f32[4]
      %k = reshape %s {shape=[4, 1]} : f32[4,1]
      %d = div %a, %k : f32[4,5]
      return %d, %s
    }"""
    out = apply(fuse, text)
    assert_fuse_preserves(text, np.linspace(-3, 3, 20, dtype=np.float32).reshape(4, 5))
    assert "reshape" in op_names(out)


def test_fuse_groups_are_convex():
    # a -> transpose (not fusible) -> b, and b also reads a: a and b in one group would make the path
    # through the transpose leave the kernel and come back.
    text = """
    func @main(%x: f32[4,4]) -> (f32[4,4]) {
      %a0 = exp %x : f32[4,4]
      %a = neg %a0 : f32[4,4]
      %t = transpose %a {perm=[1, 0]} : f32[4,4]
      %b0 = add %t, %a : f32[4,4]
      %b = tanh %b0 : f32[4,4]
      return %b
    }"""
    out = apply(fuse, text)
    assert op_names(out) == ["fused", "transpose", "fused"]
    first, second = fused_ops(out)
    assert region_op_names(first) == ["exp", "neg"]
    assert region_op_names(second) == ["add", "tanh"]
    assert_fuse_preserves(text, np.arange(16, dtype=np.float32).reshape(4, 4) / 8)


def test_fuse_convexity_with_a_reduction_in_between():
    # a -> reduce over the whole tensor -> broadcast read by b, b also reads a: the reduction over all
    # axes has another loop domain, so it may join neither a nor b in a way that breaks convexity.
    text = """
    func @main(%x: f32[4,5]) -> (f32[4,5]) {
      %a = exp %x : f32[4,5]
      %s = reduce_sum %a {axes=[0, 1], keepdims=false} : f32[]
      %r = reshape %s {shape=[1, 1]} : f32[1,1]
      %b = div %a, %r : f32[4,5]
      return %b
    }"""
    out = apply(fuse, text)
    for kernel in fused_ops(out):
        assert not {"exp", "div"} <= set(region_op_names(kernel))
    assert_fuse_preserves(text, np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5))


def test_fuse_inlines_small_constants_and_passes_large_ones():
    big = np.arange(100, dtype="<f4").reshape(20, 5)
    text = f"""
    func @main(%x: f32[20,5]) -> (f32[20,5]) {{
      %small = constant {{value=dense<f32[5]>[1.0, 2.0, 3.0, 4.0, 5.0]}} : f32[5]
      %big = constant {{value=dense<f32[20,5]>0x{big.tobytes().hex()}}} : f32[20,5]
      %a = mul %x, %small : f32[20,5]
      %b = add %a, %big : f32[20,5]
      return %b
    }}"""
    out = apply(fuse, text)
    (kernel,) = fused_ops(out)
    assert len(kernel.operands) == 2  # x and the large constant
    assert [o.name for o in kernel.regions[0].ops].count("constant") == 1
    assert_fuse_preserves(text, np.ones((20, 5), np.float32))


def test_fuse_outer_member_reads_only_outer_values_when_the_reduced_axes_are_trailing():
    # sum over axis 1 without keepdims is indexed by the outer loop i0; w[4] read in that kernel would be
    # broadcast against [4,5] (i.e. along i1), so the add stays out of the reduction's kernel.
    text = """
    func @main(%x: f32[4,5], %w: f32[4]) -> (f32[4]) {
      %e = exp %x : f32[4,5]
      %s = reduce_sum %e {axes=[1], keepdims=false} : f32[4]
      %y = add %s, %w : f32[4]
      return %y
    }"""
    out = apply(fuse, text)
    for kernel in fused_ops(out):
        assert not {"reduce_sum", "add"} <= set(region_op_names(kernel))
    assert_fuse_preserves(text, np.arange(20, dtype=np.float32).reshape(4, 5) / 10, np.arange(4, dtype=np.float32))


def test_fuse_outer_member_reads_outer_values_when_the_reduced_axes_lead():
    # sum over axis 0: the outer shape [5] lines up with the trailing dim, so w[5] joins (a bias gradient)
    text = """
    func @main(%x: f32[4,5], %w: f32[5]) -> (f32[5]) {
      %s = reduce_sum %x {axes=[0], keepdims=false} : f32[5]
      %y = sub %w, %s : f32[5]
      return %y
    }"""
    out = apply(fuse, text)
    assert op_names(out) == ["fused"]
    assert_fuse_preserves(text, np.arange(20, dtype=np.float32).reshape(4, 5), np.ones(5, np.float32))


def test_fuse_keeps_keepdims_values_apart_from_what_reads_the_squeezed_reduction():
    # select(c[], sum_keep[1], sum[]) : f32[1] mixes the keepdims index space and the squeezed one
    text = """
    func @main(%x: f32[5], %z: f32[]) -> (f32[1]) {
      %k = reduce_sum %x {axes=[0], keepdims=true} : f32[1]
      %s = reduce_max %x {axes=[0], keepdims=false} : f32[]
      %c = less %z, %z : bool[]
      %y = select %c, %k, %s : f32[1]
      return %y
    }"""
    out = apply(fuse, text)
    for kernel in fused_ops(out):
        names = region_op_names(kernel)
        assert not ("reduce_max" in names and "select" in names)
    assert_fuse_preserves(text, np.arange(5, dtype=np.float32), np.array(1, np.float32))


def test_fuse_keeps_the_graph_of_kernels_acyclic():
    # Found by test_pass_semantics: {%1, %3, %11} and {%2, %4, %5, %10} are each convex, but %5 reads %3
    # while %11 reads %10, so the two kernels would wait for each other.
    text = """
    func @main(%0: f32[4]) -> (f32[4], f32[4]) {
      %1 = neg %0 : f32[4]
      %2 = neg %0 : f32[4]
      %3 = reduce_sum %1 {axes=[0], keepdims=false} : f32[]
      %4 = less %0, %2 : bool[4]
      %5 = select %4, %3, %0 : f32[4]
      %10 = neg %2 : f32[4]
      %11 = add %1, %10 : f32[4]
      return %11, %5
    }"""
    out = apply(fuse, text)
    assert len(fused_ops(out)) >= 2
    assert_fuse_preserves(text, np.array([-1.0, 0.0, 2.0, 3.0], np.float32))


# ----------------------------------------------------------------------------- gemm


def test_gemm_folds_a_scaled_product_subtracted_from_a_matrix():
    text = """
    func @main(%x: f32[6,4], %d: f32[6,3], %w: f32[4,3]) -> (f32[4,3]) {
      %g = matmul %x, %d {transpose_a=true, transpose_b=false} : f32[4,3]
      %lr = constant {value=dense<f32[]>0.5} : f32[]
      %s = mul %g, %lr : f32[4,3]
      %n = sub %w, %s : f32[4,3]
      return %n
    }"""
    out = apply(gemm, text)
    assert_ir(out, """
    func @main(%x: f32[6,4], %d: f32[6,3], %w: f32[4,3]) -> (f32[4,3]) {
      %n = matmul_add %x, %d, %w {alpha=-0.5, transpose_a=true, transpose_b=false} : f32[4,3]
      return %n
    }""")
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype(np.float32) for s in ((6, 4), (6, 3), (4, 3))]
    same_values(interp.run(out, *args), interp.run(parse_module(text), *args), rtol=1e-6)


@pytest.mark.parametrize("body", [
    "%n = add %w, %g : f32[4,3]\n%m = mul %g, %w : f32[4,3]\n%r = add %n, %m : f32[4,3]",  # the product used twice
    "%c = constant {value=dense<f32[3]>[0.5, 0.5, 0.5]} : f32[3]\n%s = mul %g, %c : f32[4,3]\n%r = sub %w, %s : f32[4,3]",
    "%s = mul %g, %w : f32[4,3]\n%r = sub %w, %s : f32[4,3]",  # scaled by a matrix, not a constant
    "%r = sub %g, %w : f32[4,3]",  # the product minus a matrix: its negation, not an update
])
def test_gemm_leaves_other_patterns(body):
    body = "\n      ".join(body.split("\n"))
    text = f"""
    func @main(%x: f32[6,4], %d: f32[6,3], %w: f32[4,3]) -> (f32[4,3]) {{
      %g = matmul %x, %d {{transpose_a=true, transpose_b=false}} : f32[4,3]
      {body}
      return %r
    }}"""
    assert "matmul_add" not in op_names(apply(gemm, text))


def test_gemm_takes_a_product_added_either_side_and_float64():
    text = """
    func @main(%a: f64[3,5], %b: f64[5,2], %c: f64[3,2]) -> (f64[3,2]) {
      %p = matmul %a, %b {transpose_a=false, transpose_b=false} : f64[3,2]
      %r = add %p, %c : f64[3,2]
      return %r
    }"""
    assert_ir(apply(gemm, text), """
    func @main(%a: f64[3,5], %b: f64[5,2], %c: f64[3,2]) -> (f64[3,2]) {
      %r = matmul_add %a, %b, %c {alpha=1.0, transpose_a=false, transpose_b=false} : f64[3,2]
      return %r
    }""")
