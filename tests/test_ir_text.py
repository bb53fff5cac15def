"""The textual IR: golden printed form, print -> parse -> print round trips, parse errors."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuseflow.ir import dtypes as dt
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Block, Loc, Module, Op, walk_ops
from fuseflow.ir.opdefs import OPS
from fuseflow.ir.parser import ParseError, parse_function, parse_module
from fuseflow.ir.printer import DENSE_LIST_LIMIT, DTYPE_ATTRS, print_function, print_module
from fuseflow.ir.types import TensorType
from fuseflow.ir.verifier import verify


def f32(*shape):
    return TensorType(dt.float32, shape)


def same_attr(a, b) -> bool:
    """Structural attribute equality where NaN equals NaN and tuples must stay tuples."""
    if isinstance(a, np.ndarray):
        if a.dtype == object:
            return b.dtype == object and a.shape == b.shape and a.tolist() == b.tolist()
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(same_attr, a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def normal_attr(name, value):
    """Dtype attributes may be spelt as names; they read back as `DType`s."""
    return dt.as_dtype(value) if name in DTYPE_ATTRS and isinstance(value, str) else value


def round_trip(module: Module) -> Module:
    """Asserts the round-trip law on `module` and returns the parsed copy."""
    text = print_module(module)
    parsed = parse_module(text)
    assert print_module(parsed) == text
    assert parsed == module
    for fn, fn2 in zip(module.functions.values(), parsed.functions.values()):
        for op, op2 in zip(walk_ops(fn.body), walk_ops(fn2.body), strict=True):
            assert op.name == op2.name and op.loc == op2.loc
            assert [v.type for v in op.results] == [v.type for v in op2.results]
            assert op.attrs.keys() == op2.attrs.keys()
            assert all(same_attr(normal_attr(k, v), op2.attrs[k]) for k, v in op.attrs.items()), op.name
    return parsed


def fused_op(*operands, loc=None) -> Op:
    """``fused`` computing ``operands[0] * operands[1]`` in its region."""
    body = Block([v.type for v in operands])
    mul = Op("mul", body.args[:2], {}, (body.args[0].type,))
    body.ops += [mul, Op("yield", mul.results, {}, ())]
    return Op("fused", operands, {}, (operands[0].type,), (body,), loc)


# ----------------------------------------------------------------------------- golden form

GOLDEN = """\
func @main(%0: f32[2,3], %1: f32[3]) -> (f32[2], f32[2,3]) {
  %2 = add %0, %1 : f32[2,3]
  %3 = reduce_sum %2 {axes=[1], keepdims=false} : f32[2] loc("sum" at "model.py":12)
  %4 = fused %0, %1 : f32[2,3] loc("kernel") {
  ^bb(%5: f32[2,3], %6: f32[3]):
    %7 = mul %5, %6 : f32[2,3]
    yield %7
  }
  return %3, %4
}
"""


def golden_module() -> Module:
    b = Builder([f32(2, 3), f32(3)])
    x, y = b.args
    s = b.op("add", x, y)
    b.loc = Loc("sum", "model.py", 12)
    r = b.op("reduce_sum", s, axes=[1], keepdims=False)
    fused = fused_op(x, y, loc=Loc("kernel"))
    b.block.ops.append(fused)
    return Module([b.finish([r, fused.result])])


def test_module_prints_in_the_documented_form():
    assert print_module(golden_module()) == GOLDEN


def test_golden_text_parses_to_the_same_module():
    assert parse_module(GOLDEN) == golden_module()


def test_comments_are_ignored():
    commented = "# a model\n" + GOLDEN.replace("{\n  %2", "{  # body\n  %2", 1)
    assert print_module(parse_module(commented)) == GOLDEN


def test_value_names_in_text_are_free_and_renumbered():
    text = "func @f(%x: f32[2]) -> (f32[2]) {\n  %y = neg %x : f32[2]\n  return %y\n}\n"
    assert print_module(parse_module(text)) == text.replace("%x", "%0").replace("%y", "%1")


def test_several_functions_round_trip_in_order():
    fns = []
    for name in ("main", "grad_main", "weird name"):
        b = Builder([f32(None, 4)])
        fns.append(b.finish([b.op("exp", b.args[0])], name=name))
    parsed = round_trip(Module(fns))
    assert list(parsed.functions) == ["main", "grad_main", "weird name"]


def test_parse_function_reads_one_function():
    fn = parse_function(print_function(golden_module().main))
    assert print_function(fn) == GOLDEN


def test_unknown_dims_and_rank_round_trip():
    b = Builder([TensorType(dt.int64, None), TensorType(dt.float16, (None, 3)), TensorType(dt.bool_, ())])
    fn = b.finish(list(b.args))
    assert "(%0: i64[*], %1: f16[?,3], %2: bool[])" in print_function(fn)
    round_trip(Module([fn]))


# ----------------------------------------------------------------------------- attributes

ATTRS = {
    "int": 7,
    "neg": -3,
    "big": 2**70,
    "float": 1.0,
    "tiny": 5e-324,
    "third": 1 / 3,
    "inf": math.inf,
    "ninf": -math.inf,
    "nan": math.nan,
    "nzero": -0.0,
    "yes": True,
    "no": False,
    "nothing": None,
    "text": 'q"u\\o\nte\u00e9\x00',
    "raw": b'\x00\xff"\\ok',
    "dtype": dt.int64,
    "output_type": "float16",
    "dtypes": (dt.bool_, dt.string),
    "empty": (),
    "slices": ((0, 2, 1), (None, None, -1)),
    "deep": (((1,),), ()),
}


def test_every_attribute_kind_round_trips():
    b = Builder([f32(2)])
    b.block.ops.append(Op("custom", b.args, ATTRS, (f32(2),)))
    text = print_module(Module([b.finish([b.block.ops[-1].result])]))
    parsed = parse_module(text)
    attrs = parsed.main.ops[0].attrs
    assert print_module(parsed) == text
    expected = dict(ATTRS, output_type=dt.float16)  # dtype names normalise to DType
    assert all(same_attr(expected[k], attrs[k]) for k in ATTRS)


def test_attribute_spellings():
    text = print_module(Module([Builder().finish([])]))
    assert text == "func @main() -> () {\n  return\n}\n"
    b = Builder([f32(2)])
    b.block.ops.append(Op("custom", b.args, {"f": 1.0, "i": 1, "t": (1, 2.5), "d": dt.float32}, (f32(2),)))
    line = print_module(Module([b.finish([])])).splitlines()[1]
    assert line == "  %1 = custom %0 {d=f32, f=1.0, i=1, t=[1, 2.5]} : f32[2]"


def test_locations_round_trip():
    for loc in (Loc("dense/MatMul"), Loc("a", "/tmp/x y.py", 3), Loc("", "f.py", 1)):
        b = Builder([f32(2)])
        b.loc = loc
        round_trip(Module([b.finish([b.op("neg", b.args[0])])]))


# ----------------------------------------------------------------------------- every op


def _examples():
    """Operands (by argument name) and attributes for one instance of every non-control op."""
    reduce = {"axes": (1,), "keepdims": False}
    random = (("counter",), {"shape": (2, 3), "dtype": dt.float32, "seed": 1, "seed2": 2})
    table = {
        "logical_not": (("mask",), {}),
        "logical_and": (("mask", "mask"), {}),
        "logical_or": (("mask", "mask"), {}),
        "select": (("mask", "x", "v"), {}),
        "cast": (("x",), {"dtype": dt.int32}),
        "reduce_max": (("x",), {"axes": (0, 1), "keepdims": True}),
        "argmax": (("x",), {"axis": 1, "output_type": dt.int64}),
        "argmin": (("x",), {"axis": -1, "output_type": "int32"}),
        "matmul": (("x", "m"), {"transpose_a": False, "transpose_b": False}),
        "matmul_add": (("x", "m", "u"), {"transpose_a": False, "transpose_b": False, "alpha": -0.5}),
        "reshape": (("x",), {"shape": (3, -1)}),
        "transpose": (("x",), {"perm": (1, 0)}),
        "broadcast_to": (("v",), {"shape": (4, 3)}),
        "slice": (("x",), {"slices": ((0, 2, 1), (None, None, -1))}),
        "concat": (("x", "x", "x"), {"axis": 0}),
        "gather": (("x", "idx"), {"axis": 1}),
        "scatter_add": (("u", "idx"), {"shape": (2, 5), "axis": 1}),
        "scatter_slice": (("x",), {"shape": (4, 3), "slices": ((0, 4, 2), (None, None, None))}),
        "gradients": (("s", "x", "v"), {"num_ys": 1, "num_xs": 2}),
        "jvp": (("x", "x", "x"), {"num_ys": 1, "num_xs": 1}),
        "iota": ((), {"shape": (2, 3), "axis": 1, "dtype": dt.int32}),
        "constant": ((), {"value": np.arange(6, dtype=np.float32).reshape(2, 3)}),
        "copy_to_device": (("x",), {"device": "/device:GPU:0"}),
    }
    for name, opdef in OPS.items():
        if name in table or opdef.category == "control":
            continue
        if name.startswith("random_"):
            table[name] = random
        elif opdef.category == "reduction":
            table[name] = (("x",), reduce)
        elif opdef.category == "elementwise" and not opdef.attrs:
            table[name] = (("x", "v")[: opdef.arity], {})
    return table


EXAMPLES = _examples()
ARGS = {
    "x": f32(2, 3),
    "v": f32(3),
    "m": f32(3, 4),
    "mask": TensorType(dt.bool_, (2, 3)),
    "idx": TensorType(dt.int32, (4,)),
    "counter": TensorType(dt.int64, ()),
    "u": f32(2, 4),
    "s": f32(),
}


def every_op_module() -> Module:
    b = Builder(list(ARGS.values()))
    args = dict(zip(ARGS, b.args))
    results = []
    for name, (operands, attrs) in EXAMPLES.items():
        out = b.op(name, *(args[a] for a in operands), **attrs)
        results.extend(out if isinstance(out, tuple) else [out])
    fused = fused_op(args["x"], args["v"])
    b.block.ops.append(fused)
    return Module([b.finish(results + [fused.result])])


def test_every_non_control_op_has_an_example():
    missing = [n for n, d in OPS.items() if d.category != "control" and n not in EXAMPLES]
    assert not missing, f"add an example to EXAMPLES for {missing}"


def test_every_op_round_trips():
    module = every_op_module()
    round_trip(module)
    printed_ops = {line.split(" = ", 1)[1].split()[0] for line in print_module(module).splitlines() if " = " in line}
    assert set(EXAMPLES) | {"fused", "mul"} <= printed_ops


def test_every_op_example_passes_the_verifier():
    verify(every_op_module())
    verify(parse_module(print_module(every_op_module())))


# ----------------------------------------------------------------------------- constants

CONSTANTS = {
    "bool": np.array([[True, False], [False, True]]),
    "i8": np.array([-128, 0, 127], np.int8),
    "i16": np.array([-32768, 32767], np.int16),
    "i32": np.array([[-(2**31), 2**31 - 1]], np.int32),
    "i64": np.array([-(2**63), 2**63 - 1], np.int64),
    "u8": np.array([0, 255], np.uint8),
    "f16": np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 65504, 6e-8, 0.1], np.float16),
    "f32": np.array([0.1, 1e-45, 3.4028235e38, -np.nan, 1.0, 16777217.0], np.float32),
    "f64": np.array([0.1, 5e-324, np.nan, -0.0, 1e300, 2**53 + 1.0]),
    "scalar": np.array(3.5, np.float32),
    "empty_rows": np.zeros((0, 3), np.int32),
    "empty_cols": np.zeros((3, 0), np.float64),
    "str": np.array([b"", b'q"u\\o', b"\xff\x00\n"], dtype=object),
    "str2d": np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object),
    "str_scalar": np.array(b"only", dtype=object),
    "str_large": np.array([b"%d" % i for i in range(20)], dtype=object),
    "large_f32": np.linspace(-1, 1, 40, dtype=np.float32).reshape(5, 8),
    "large_f16": np.full(17, np.nan, np.float16),
    "large_bool": np.arange(30) % 3 == 0,
    "large_i64": np.arange(-50, 50, dtype=np.int64),
    "nan_payload": np.array([1, 0x7FC00001, 0xFFC00000], np.uint32).view(np.float32),
}


def constant_round_trip(arr: np.ndarray) -> np.ndarray:
    b = Builder()
    module = Module([b.finish([b.constant(arr)])])
    return round_trip(module).main.ops[0].attrs["value"]


@pytest.mark.parametrize("name", CONSTANTS)
def test_constant_round_trips(name):
    arr = CONSTANTS[name]
    assert same_attr(arr, constant_round_trip(arr))


def test_every_dtype_has_a_constant():
    kinds = {dt.as_dtype(a.dtype) for a in CONSTANTS.values()}
    assert kinds == set(dt.ALL)


def test_small_arrays_print_as_lists_and_large_ones_as_hex():
    def value_text(arr):
        b = Builder()
        return print_module(Module([b.finish([b.constant(arr)])])).splitlines()[1]

    assert "value=dense<f16[2]>[nan, -0.0]" in value_text(np.array([np.nan, -0.0], np.float16))
    assert "value=dense<bool[]>true" in value_text(np.array(True))
    big = np.ones(DENSE_LIST_LIMIT + 1, np.int32)
    assert f"value=dense<i32[{big.size}]>0x{big.astype('<i4').tobytes().hex()}" in value_text(big)


def test_unicode_string_constants_read_back_as_utf8_bytes():
    b = Builder()
    text = print_module(Module([b.finish([b.constant(np.array(["héllo", "x"]))])]))
    parsed = parse_module(text)
    assert print_module(parsed) == text
    value = parsed.main.ops[0].attrs["value"]
    assert value.dtype == object and value.tolist() == ["héllo".encode(), b"x"]


FLOAT_BITS = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)


def float_arrays():
    """Arrays of every bit pattern (NaN payloads included) and of ordinary floats."""
    any_bits = st.sampled_from(list(FLOAT_BITS)).flatmap(
        lambda f: hnp.arrays(FLOAT_BITS[f], SHAPES).map(lambda a: a.view(f))
    )
    ordinary = st.sampled_from(list(FLOAT_BITS)).flatmap(
        lambda f: hnp.arrays(f, SHAPES, elements=st.floats(width=np.dtype(f).itemsize * 8))
    )
    return st.one_of(any_bits, ordinary)


@settings(max_examples=300, deadline=None)
@given(float_arrays())
def test_float_constants_round_trip_bit_exactly(arr):
    back = constant_round_trip(arr)
    assert back.dtype == arr.dtype and back.shape == arr.shape and back.tobytes() == arr.tobytes()


# ----------------------------------------------------------------------------- parse errors

HEAD = "func @main(%0: f32[2]) -> (f32[2]) {\n"
BAD = [
    # (text, line, column, words in the message)
    (HEAD + "  %1 = neg %9 : f32[2]\n  return %1\n}\n", 2, 12, "undefined %9"),
    (HEAD + "  %1 = neg %0 : f33[2]\n  return %1\n}\n", 2, 17, "dtype"),
    (HEAD + "  %1 neg %0 : f32[2]\n  return %1\n}\n", 2, 6, "'='"),
    (HEAD + "  %0 = neg %0 : f32[2]\n  return %0\n}\n", 2, 3, "defined twice"),
    (HEAD + "  %1 = neg %0\n  return %1\n}\n", 2, 8, "result type"),
    (HEAD + "  %1 = neg %0 : f32[2]\n  return %0, %1\n}\n", 3, 3, "declared types"),
    (HEAD + "  %1 = reduce_sum %0 {axes=[0], keepdims=maybe} : f32[]\n", 2, 42, "attribute value"),
    (HEAD + "  %1 = constant {value=dense<f32[2]>[1.0]} : f32[2]\n", 2, 37, "2 elements"),
    (HEAD + "  %1 = constant {value=dense<i8[1]>[300]} : i8[1]\n", 2, 36, "fit i8"),
    (HEAD + "  %1 = constant {value=dense<f32[2]>0x00} : f32[2]\n", 2, 37, "8 bytes"),
    (HEAD + "  %1 = neg %0 : f32[2] $\n", 2, 24, "token"),
    (HEAD + "  %1 = neg %0 : f32[2]\n", 3, 1, "end of input"),
    ("func main() -> () {\n  return\n}\n", 1, 6, "function name"),
    ("func @main() -> () {\n  return\n}\nfunc @main() -> () {\n  return\n}\n", 4, 1, "defined twice"),
]


@pytest.mark.parametrize("text, line, column, words", BAD)
def test_parse_errors_name_line_and_column(text, line, column, words):
    with pytest.raises(ParseError) as info:
        parse_module(text)
    assert isinstance(info.value, ValueError)
    assert (info.value.line, info.value.column) == (line, column)
    assert str(info.value).startswith(f"line {line}, column {column}: expected ")
    assert words in str(info.value)


def test_parse_function_rejects_trailing_text():
    with pytest.raises(ParseError, match="line 11, column 1: expected end of input"):
        parse_function(GOLDEN + "func")
