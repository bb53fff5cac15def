"""Element types of fuseflow tensors.

A `DType` is one of a fixed set of singletons (``float32``, ``int32``, ...). It
knows its TensorFlow name, its short IR spelling (``f32``) and its numpy dtype.
`as_dtype` is the one place that turns user spellings (``"float"``,
``np.int64``, ``tf.float32``, a Python type) into a `DType`.
"""

from __future__ import annotations

import numpy as np


class DType:
    """An element type; compare with ``==`` or ``is`` (instances are unique)."""

    __slots__ = ("name", "np", "short")

    def __init__(self, name: str, short: str, np_dtype) -> None:
        self.name = name
        self.short = short
        self.np = np.dtype(np_dtype)

    @property
    def as_numpy_dtype(self):
        return self.np.type

    @property
    def is_floating(self) -> bool:
        return self.np.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self.np.kind in "iu"

    @property
    def is_unsigned(self) -> bool:
        return self.np.kind == "u"

    @property
    def is_bool(self) -> bool:
        return self.np.kind == "b"

    @property
    def is_numeric(self) -> bool:
        return self.np.kind in "iuf"

    @property
    def is_string(self) -> bool:
        return self is string

    @property
    def base_dtype(self) -> DType:
        return self

    @property
    def min(self):
        return np.finfo(self.np).min if self.is_floating else np.iinfo(self.np).min

    @property
    def max(self):
        return np.finfo(self.np).max if self.is_floating else np.iinfo(self.np).max

    def __repr__(self) -> str:
        return f"tf.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


bool_ = DType("bool", "bool", np.bool_)
int8 = DType("int8", "i8", np.int8)
int16 = DType("int16", "i16", np.int16)
int32 = DType("int32", "i32", np.int32)
int64 = DType("int64", "i64", np.int64)
uint8 = DType("uint8", "u8", np.uint8)
float16 = DType("float16", "f16", np.float16)
float32 = DType("float32", "f32", np.float32)
float64 = DType("float64", "f64", np.float64)
string = DType("string", "str", np.object_)

ALL = (bool_, int8, int16, int32, int64, uint8, float16, float32, float64, string)
NUMERIC = tuple(d for d in ALL if d.is_numeric)
FLOATS = (float16, float32, float64)
INTEGERS = (int8, int16, int32, int64, uint8)

_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({d.short: d for d in ALL})
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "int": int32,
                 "long": int64, "bytes": string, "str": string})
_BY_NP = {d.np: d for d in ALL if d is not string}


def as_dtype(value) -> DType:
    """Turns a dtype spelling (DType, name, short name, numpy dtype, Python type) into a DType."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str):
        if value in _BY_NAME:
            return _BY_NAME[value]
        raise TypeError(f"unknown dtype {value!r}; expected one of {sorted(d.name for d in ALL)}")
    if value is bool:
        return bool_
    if value is int:
        return int32
    if value is float:
        return float32
    if value in (str, bytes):
        return string
    try:
        np_dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"cannot interpret {value!r} as a dtype") from None
    if np_dtype.kind in "OSU":
        return string
    if np_dtype in _BY_NP:
        return _BY_NP[np_dtype]
    raise TypeError(f"dtype {np_dtype} is not supported by fuseflow")


def result_type_of_python(value) -> DType:
    """The dtype TensorFlow gives a Python/numpy constant: floats f32, ints i32, arrays keep theirs."""
    if isinstance(value, (np.ndarray, np.generic)):
        return as_dtype(value.dtype)
    arr = np.asarray(value)
    if arr.dtype.kind in "OSU":
        return string
    if arr.dtype.kind == "b":
        return bool_
    if arr.dtype.kind in "iu":
        return int32 if arr.size == 0 or (np.abs(arr).max() < 2**31) else int64
    if arr.dtype.kind == "f":
        return float32
    raise TypeError(f"cannot make a tensor of {type(value).__name__} {value!r}")
