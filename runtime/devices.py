"""The devices of this process, found in one place, and where values live at run time.

`gpu_count` asks numba.cuda once (imported then, never at ``import fuseflow``); under numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the simulated device counts as one GPU, which is
how the CUDA tests run without one. `placement` turns a session config into the place pass's
`Placement`; `kernel_for` picks the backend of an op from the device it was placed on.
Host values are numpy arrays; GPU values are numba device arrays.
"""

from __future__ import annotations

import os
import sys
from functools import cache

import numpy as np

from fuseflow.codegen import cuda_device as cd
from fuseflow.ir.core import Op
from fuseflow.ir.devices import is_gpu
from fuseflow.passes.place import Placement

TRANSFERS = cd.TRANSFERS  # host<->device copies made, by direction


@cache
def gpu_count() -> int:
    """How many GPUs numba.cuda can use here (the simulator is one); 0 without numba.cuda or a driver."""
    if not cd.simulated() and not _driver_present():
        return 0  # (importing numba.cuda to learn this costs ~40 ms of every process's first run)
    try:
        cuda = cd.cuda()
        if not cuda.is_available():
            return 0
        return max(len(cuda.gpus), 1)
    except Exception:  # noqa: BLE001  (no numba.cuda, no driver, a broken install: the host alone)
        return 0


def _driver_present() -> bool:
    """Whether an NVIDIA driver may be here (on Linux its kernel module shows in /proc and /dev,
    in containers too); elsewhere numba.cuda is asked."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl")


def _log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def placement(config=None, arg_devices=(), result_devices=()) -> Placement:
    """The place pass's rules for a session with `config` (TF's ``ConfigProto`` fields
    ``allow_soft_placement`` and ``log_device_placement``; None: TF's defaults, both off)."""
    from fuseflow.codegen.cuda import has_gpu_kernel

    soft = bool(getattr(config, "allow_soft_placement", False))
    log = _log_to_stderr if getattr(config, "log_device_placement", False) else None
    return Placement(gpus=gpu_count(), has_gpu_kernel=has_gpu_kernel, soft=soft, log=log,
                     arg_devices=tuple(arg_devices), result_devices=tuple(result_devices))


def kernel_for(op: Op):
    """The kernel of `op` for the device it was placed on (``copy_to_device``: a transfer)."""
    if op.name == "copy_to_device":
        from fuseflow.codegen.cuda import copy_kernel

        return copy_kernel(op.attrs["device"])
    if is_gpu(op.device):
        from fuseflow.codegen.cuda import compile_op as compile_gpu

        return compile_gpu(op)
    from fuseflow.codegen.cpu import compile_op

    return compile_op(op)


def move(value, device: str):
    """`value` on `device`: uploaded to a GPU or downloaded to the host when it is elsewhere (counted)."""
    if is_gpu(device):
        return cd.to_device(value)
    return cd.to_host(value)


def new_buffer(shape, dtype, device: str):
    """An uninitialised array on `device` (numpy on the host, a device array on a GPU)."""
    return cd.device_empty(shape, dtype) if is_gpu(device) else np.empty(shape, dtype)


def copy_value(value):
    """A copy of a host or device array, on the same device."""
    return cd.device_copy(value) if cd.is_device_array(value) else value.copy()
