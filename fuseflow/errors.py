"""``tf.errors``, and fuseflow's own: numpy functions a traced function may not use, disk-cache warnings."""

from fuseflow.codegen.disk_cache import FuseflowCacheWarning  # noqa: F401
from fuseflow.frontend.numpy_api import UnsupportedNumpyError  # noqa: F401
from fuseflow.ir.errors import (  # noqa: F401
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OpError,
    UnimplementedError,
)
