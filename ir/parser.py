"""Reads the textual IR that `fuseflow.ir.printer` writes back into `Module`s.

Result types come from the text, never from the type rules, so whatever was
printed reads back as the same IR (run the verifier to check it). Values may be
named ``%anything``; a name is visible after its definition in its block and in
nested regions. ``#`` starts a comment to the end of the line. Errors raise
`ParseError` with the line and column of the offending token.
"""

from __future__ import annotations

import ast
import json
import re

import numpy as np

from fuseflow.ir.core import Block, Function, Loc, Module, Op
from fuseflow.ir.dtypes import as_dtype
from fuseflow.ir.printer import DTYPE_ATTRS, elements_to_array
from fuseflow.ir.types import TensorType


class ParseError(ValueError):
    """Malformed IR text: ``line L, column C: expected X, found Y``."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column


def parse_module(text: str) -> Module:
    """Parses any number of functions into a `Module`."""
    p = _Parser(text)
    functions: dict = {}
    while p.peek().kind != "eof":
        tok = p.peek()
        fn = p.function()
        if fn.name in functions:
            raise ParseError(tok.line, tok.col, f"expected a new function name, found @{fn.name} defined twice")
        functions[fn.name] = fn
    return Module(functions.values())


def parse_function(text: str) -> Function:
    """Parses text that holds exactly one function."""
    p = _Parser(text)
    fn = p.function()
    p.expect_kind("eof", "end of input after the function")
    return fn


def parse_type(text: str) -> TensorType:
    """Parses one tensor type such as ``f32[?,784]``."""
    p = _Parser(text)
    type_ = p.type()
    p.expect_kind("eof", "end of input after the type")
    return type_


# ----------------------------------------------------------------------------- lexer

_TOKENS = [
    ("skip", r"[ \t\r\n]+|#[^\n]*"),
    ("value", r"%[\w.$-]+"),
    ("symbol", r"@[A-Za-z_][\w.$-]*"),
    ("label", r"\^[A-Za-z_]\w*"),
    ("bytes", r'b"(?:[^"\\\n]|\\.)*"'),
    ("string", r'"(?:[^"\\\n]|\\.)*"'),
    ("hex", r"0x[0-9a-fA-F]+"),
    ("number", r"-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"),
    ("ident", r"[A-Za-z_][\w.]*"),
    ("punct", r"->|[()\[\]{}<>,:=?*@\-]"),
]
_LEXER = re.compile("|".join(f"(?P<{k}>{r})" for k, r in _TOKENS))


class _Token:
    __slots__ = ("col", "kind", "line", "text")

    def __init__(self, kind, text, line, col) -> None:
        self.kind, self.text, self.line, self.col = kind, text, line, col

    def describe(self) -> str:
        return "end of input" if self.kind == "eof" else repr(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        m = _LEXER.match(text, pos)
        if m is None:
            raise ParseError(line, pos - line_start + 1, f"expected a token, found {text[pos]!r}")
        if m.lastgroup != "skip":
            tokens.append(_Token(m.lastgroup, m.group(), line, pos - line_start + 1))
        newlines = m.group().count("\n")
        if newlines:
            line += newlines
            line_start = m.start() + m.group().rindex("\n") + 1
        pos = m.end()
    tokens.append(_Token("eof", "", line, pos - line_start + 1))
    return tokens


# ----------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.scopes: list[dict] = []
        self.defined: set = set()

    # -- tokens

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> _Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def error(self, expected: str, tok: _Token | None = None):
        tok = tok or self.peek()
        return ParseError(tok.line, tok.col, f"expected {expected}, found {tok.describe()}")

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok.kind in ("punct", "ident") and tok.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str, expected: str | None = None) -> _Token:
        """The next token, which must be the punctuation or keyword `text`."""
        if self.at(text):
            return self.next()
        raise self.error(expected or repr(text))

    def expect_kind(self, kind: str, expected: str) -> _Token:
        """The next token, which must be of `kind` (``value``, ``string``, ``number``...)."""
        if self.peek().kind == kind:
            return self.next()
        raise self.error(expected)

    def comma_list(self, item, close: str) -> list:
        """Items separated by commas up to the closing punctuation (consumed)."""
        out = []
        if not self.accept(close):
            out.append(item())
            while self.accept(","):
                out.append(item())
            self.expect(close, f"',' or {close!r}")
        return out

    # -- values

    def define(self, tok: _Token, value) -> None:
        if tok.text in self.defined:
            raise ParseError(tok.line, tok.col, f"expected a new value name, found {tok.text} defined twice")
        self.defined.add(tok.text)
        self.scopes[-1][tok.text] = value

    def use(self):
        tok = self.expect_kind("value", "a value such as %0")
        for scope in reversed(self.scopes):
            if tok.text in scope:
                return scope[tok.text]
        raise ParseError(tok.line, tok.col, f"expected a defined value, found undefined {tok.text}")

    # -- functions, blocks, ops

    def function(self) -> Function:
        self.expect("func", "'func'")
        tok = self.next()
        if tok.kind == "symbol":
            name = tok.text[1:]
        elif tok.text == "@" and self.peek().kind == "string":
            name = json.loads(self.next().text)
        else:
            raise self.error("a function name such as @main", tok)
        self.defined = set()
        self.scopes = [{}]
        self.expect("(")
        args = self.comma_list(self.block_arg, ")")
        self.expect("->")
        self.expect("(")
        result_types = self.comma_list(self.type, ")")
        block = Block([t for _, t in args])
        for (tok_arg, _), value in zip(args, block.args):
            self.define(tok_arg, value)
        self.expect("{")
        end = self.ops_until_close(block)
        if block.ops and block.ops[-1].name == "return":
            got = [v.type for v in block.ops[-1].operands]
            if got != result_types:
                expected = ", ".join(map(str, result_types))
                found = ", ".join(map(str, got))
                raise ParseError(
                    end.line, end.col, f"expected return operands of the declared types ({expected}), found ({found})"
                )
        return Function(name, block)

    def block_arg(self):
        tok = self.expect_kind("value", "a block argument such as %0")
        self.expect(":")
        return tok, self.type()

    def ops_until_close(self, block: Block) -> _Token:
        """Parses ops into `block` up to its closing brace; returns the last op's first token."""
        last = self.peek()
        while not self.accept("}"):
            last = self.peek()
            block.ops.append(self.op())
        return last

    def op(self) -> Op:
        result_toks = []
        if self.peek().kind == "value":
            result_toks.append(self.next())
            while self.accept(","):
                result_toks.append(self.expect_kind("value", "a result value such as %0"))
            self.expect("=", "'='")
        name_tok = self.next()
        if name_tok.kind not in ("ident", "string"):
            raise self.error("an op name" if not result_toks else "an op name after '='", name_tok)
        name = json.loads(name_tok.text) if name_tok.kind == "string" else name_tok.text
        operands = []
        # Operands start on the op's line: a next line may begin with a result value.
        if self.peek().kind == "value" and self.peek().line == name_tok.line:
            operands.append(self.use())
            while self.accept(","):
                operands.append(self.use())
        attrs = self.attr_dict() if self.at("{") and self.peek(1).kind != "label" else {}
        types = []
        if self.accept(":"):
            types.append(self.type())
            while self.accept(","):
                types.append(self.type())
        if len(types) != len(result_toks):
            raise ParseError(
                name_tok.line,
                name_tok.col,
                f"expected {len(result_toks)} result type(s) for {name}, one per result, found {len(types)}",
            )
        device = ""
        if self.at("on") and self.peek(1).kind == "string":
            self.next()
            device = json.loads(self.next().text)
        loc = self.loc() if self.at("loc") and self.peek(1).text == "(" else None
        regions = []
        while self.at("{") and self.peek(1).kind == "label":
            regions.append(self.region())
        op = Op(name, operands, attrs, types, regions, loc, device)
        for tok, value in zip(result_toks, op.results):
            self.define(tok, value)
        return op

    def region(self) -> Block:
        self.expect("{")
        self.expect_kind("label", "a block label such as ^bb")
        self.expect("(")
        args = self.comma_list(self.block_arg, ")")
        self.expect(":")
        block = Block([t for _, t in args])
        self.scopes.append({})
        for (tok, _), value in zip(args, block.args):
            self.define(tok, value)
        self.ops_until_close(block)
        self.scopes.pop()
        return block

    def loc(self) -> Loc:
        self.expect("loc")
        self.expect("(")
        name = json.loads(self.expect_kind("string", "a quoted op name").text)
        file, line = "", 0
        if self.accept("at"):
            file = json.loads(self.expect_kind("string", "a quoted file name").text)
            self.expect(":")
            line = self.natural("a line number")
        self.expect(")")
        return Loc(name, file, line)

    # -- types

    def type(self) -> TensorType:
        tok = self.expect_kind("ident", "a type such as f32[2,3]")
        try:
            dtype = as_dtype(tok.text)
        except TypeError:
            raise self.error("a dtype such as f32", tok) from None
        self.expect("[")
        if self.accept("*"):
            self.expect("]")
            return TensorType(dtype, None)
        return TensorType(dtype, tuple(self.comma_list(self.dim, "]")))

    def dim(self):
        if self.accept("?"):
            return None
        return self.natural("a dim (an integer or '?')")

    def natural(self, expected: str) -> int:
        tok = self.expect_kind("number", expected)
        if not tok.text.isdigit():
            raise self.error(expected, tok)
        return int(tok.text)

    # -- attributes

    def attr_dict(self) -> dict:
        self.expect("{")
        attrs: dict = {}

        def item():
            tok = self.next()
            if tok.kind not in ("ident", "string"):
                raise self.error("an attribute name", tok)
            name = json.loads(tok.text) if tok.kind == "string" else tok.text
            if name in attrs:
                raise ParseError(tok.line, tok.col, f"expected a new attribute name, found {name} given twice")
            self.expect("=")
            value_tok = self.peek()
            value = self.attr_value()
            if name in DTYPE_ATTRS and isinstance(value, str):
                try:
                    value = as_dtype(value)
                except TypeError:
                    raise self.error("a dtype name", value_tok) from None
            attrs[name] = value

        self.comma_list(item, "}")
        return attrs

    def attr_value(self):
        tok = self.peek()
        if tok.kind == "string":
            return json.loads(self.next().text)
        if tok.kind == "ident" and tok.text == "dense":
            return self.dense()
        if self.accept("["):
            return tuple(self.comma_list(self.attr_value, "]"))
        if tok.kind == "ident" and tok.text not in _SCALAR_WORDS:
            try:
                dtype = as_dtype(tok.text)
            except TypeError:
                raise self.error("an attribute value") from None
            self.next()
            return dtype
        return self.scalar("an attribute value")

    def scalar(self, expected: str):
        """A number, ``true``/``false``/``none``, ``inf``/``-inf``/``nan`` or a bytes literal."""
        tok = self.next()
        if tok.kind == "number":
            is_float = any(c in tok.text for c in ".eE")
            return float(tok.text) if is_float else int(tok.text)
        if tok.kind == "bytes":
            return ast.literal_eval(tok.text)
        if tok.kind == "ident" and tok.text in _SCALAR_WORDS:
            return _SCALAR_WORDS[tok.text]
        if tok.kind == "punct" and tok.text == "-" and self.at("inf"):
            self.next()
            return float("-inf")
        raise self.error(expected, tok)

    def dense(self):
        self.expect("dense")
        self.expect("<")
        type_tok = self.peek()
        t = self.type()
        self.expect(">")
        if not t.is_static:
            raise self.error("a static type for a dense array", type_tok)
        dtype, shape = t.dtype, t.shape
        tok = self.peek()
        if tok.kind == "hex":
            return self.dense_hex(self.next(), dtype, shape, t.size)
        elements = []
        self.elements(elements)
        if len(elements) != t.size:
            raise ParseError(tok.line, tok.col, f"expected {t.size} elements for {t}, found {len(elements)}")
        for x in elements:
            if not _element_fits(x, dtype):
                raise ParseError(tok.line, tok.col, f"expected elements of {dtype.short}, found {x!r}")
        try:
            return elements_to_array(elements, dtype, shape)
        except (OverflowError, ValueError) as e:
            raise ParseError(tok.line, tok.col, f"expected elements that fit {dtype.short}, found {e}") from None

    def dense_hex(self, tok: _Token, dtype, shape, size: int):
        if dtype.is_string:
            raise self.error('string elements as a list of b"..." literals', tok)
        data = bytes.fromhex(tok.text[2:]) if len(tok.text) % 2 == 0 else None
        little = dtype.np.newbyteorder("<")
        if data is None or len(data) != size * little.itemsize:
            raise ParseError(
                tok.line, tok.col, f"expected {size * little.itemsize} bytes of hex, found {(len(tok.text) - 2) / 2:g}"
            )
        return np.frombuffer(data, dtype=little).astype(dtype.np).reshape(shape)

    def elements(self, out: list) -> None:
        if self.accept("["):
            if not self.accept("]"):
                self.elements(out)
                while self.accept(","):
                    self.elements(out)
                self.expect("]", "',' or ']'")
            return
        out.append(self.scalar("an array element"))


_SCALAR_WORDS = {"true": True, "false": False, "none": None, "inf": float("inf"), "nan": float("nan")}


def _element_fits(x, dtype) -> bool:
    if dtype.is_string:
        return isinstance(x, bytes)
    if dtype.is_bool:
        return isinstance(x, bool)
    if dtype.is_integer:
        return isinstance(x, int) and not isinstance(x, bool)
    return isinstance(x, (int, float)) and not isinstance(x, bool)
