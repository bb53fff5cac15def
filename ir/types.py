"""Tensor types: a dtype and a shape whose dims are ints or ``None`` (unknown).

In the frontend a shape may also be ``None`` as a whole (unknown rank, as
``tf.placeholder(tf.float32)`` makes). IR functions after lowering have fully
known shapes; the type rules accept unknown dims and propagate them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fuseflow.ir.dtypes import DType, as_dtype


@dataclass(frozen=True)
class TensorType:
    """``dtype[d0,d1,...]``; a dim is an int or ``None``; ``shape=None`` means unknown rank."""

    dtype: DType
    shape: tuple | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", as_dtype(self.dtype))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(None if d is None else int(d) for d in self.shape))

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(d is not None for d in self.shape)

    @property
    def size(self) -> int | None:
        if not self.is_static:
            return None
        n = 1
        for d in self.shape:
            n *= d
        return n

    def with_dtype(self, dtype) -> TensorType:
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.dtype.short}[*]"
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.short}[{dims}]"

    def is_compatible_with(self, other: TensorType) -> bool:
        """True when some concrete shape fits both (dtype must match exactly)."""
        if self.dtype != other.dtype:
            return False
        return shapes_compatible(self.shape, other.shape)


def shapes_compatible(a, b) -> bool:
    if a is None or b is None:
        return True
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b))


def format_shape(shape) -> str:
    """TF-style shape text: ``(2, ?, 3)`` or ``<unknown>``."""
    if shape is None:
        return "<unknown>"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
