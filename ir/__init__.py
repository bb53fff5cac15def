"""The SSA IR: types, ops, the op table, builder, printer/parser, verifier and interpreter."""

from fuseflow.ir import opdefs, opdefs_data  # noqa: F401  (registers the whole op table)
from fuseflow.ir.core import Block, Function, Loc, Module, Op, Value
from fuseflow.ir.dtypes import DType, as_dtype
from fuseflow.ir.types import TensorType

__all__ = ["Block", "DType", "Function", "Loc", "Module", "Op", "TensorType", "Value", "as_dtype", "opdefs"]
