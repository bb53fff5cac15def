"""``tf.errors``."""

from fuseflow.ir.errors import (  # noqa: F401
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OpError,
    UnimplementedError,
)
