"""Device names, parsed in one place.

Accepts TF spellings: ``/cpu:0``, ``/gpu:1``, ``/device:GPU:3``,
``/job:worker/replica:0/task:17/device:GPU:3``, ``""``. `DeviceSpec.merge`
implements nested ``tf.device`` scopes (inner fields override outer ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

_PART = re.compile(r"^(job|replica|task|device|cpu|gpu|CPU|GPU)(?::(.*))?$")


@dataclass(frozen=True)
class DeviceSpec:
    """The parsed fields of a device name; None means unspecified."""

    job: str | None = None
    replica: int | None = None
    task: int | None = None
    device_type: str | None = None
    device_index: int | None = None

    @staticmethod
    def parse(name) -> DeviceSpec:
        if isinstance(name, DeviceSpec):
            return name
        if name is None or name == "":
            return DeviceSpec()
        if not isinstance(name, str):
            raise TypeError(f"a device name must be a string, got {type(name).__name__} {name!r}")
        fields = {}
        for part in name.strip("/").split("/"):
            m = _PART.match(part)
            if not m:
                raise ValueError(f"bad device name {name!r}: cannot parse {part!r}; expected e.g. "
                                 "'/cpu:0', '/gpu:0' or '/job:worker/task:1/device:GPU:0'")
            key, rest = m.group(1), m.group(2)
            try:
                if key in ("job",):
                    fields["job"] = rest
                elif key in ("replica", "task"):
                    fields[key] = int(rest)
                elif key == "device":
                    kind, _, index = (rest or "").partition(":")
                    fields["device_type"] = kind.upper()
                    fields["device_index"] = None if index in ("", "*") else int(index)
                else:
                    fields["device_type"] = key.upper()
                    fields["device_index"] = None if rest in (None, "", "*") else int(rest)
            except ValueError:
                raise ValueError(f"bad device name {name!r}: {part!r} needs an integer index") from None
        if fields.get("device_type") not in (None, "CPU", "GPU"):
            raise ValueError(f"bad device name {name!r}: unknown device type {fields['device_type']!r}")
        return DeviceSpec(**fields)

    def merge(self, inner: DeviceSpec) -> DeviceSpec:
        """The scope `inner` nested inside `self`: fields `inner` sets win."""
        changes = {k: v for k, v in inner.__dict__.items() if v is not None}
        return replace(self, **changes)

    def to_string(self) -> str:
        parts = []
        if self.job is not None:
            parts.append(f"/job:{self.job}")
        if self.replica is not None:
            parts.append(f"/replica:{self.replica}")
        if self.task is not None:
            parts.append(f"/task:{self.task}")
        if self.device_type is not None:
            index = "*" if self.device_index is None else self.device_index
            parts.append(f"/device:{self.device_type}:{index}")
        return "".join(parts)

    def __str__(self) -> str:
        return self.to_string()


HOST = "/device:CPU:0"
LOCAL_TASK = "/job:localhost/replica:0/task:0"


def canonical(name) -> str:
    """The short name the IR records, ``/device:GPU:0``; ``""`` for a spec that names no device type.

    Job, replica and task are dropped: every device of a run belongs to the local task. An
    unspecified index is 0.
    """
    spec = DeviceSpec.parse(name)
    if spec.device_type is None:
        return ""
    return f"/device:{spec.device_type}:{spec.device_index or 0}"


def full_name(name) -> str:
    """TF's full name of a device, ``/job:localhost/replica:0/task:0/device:GPU:0`` (the host for ``""``)."""
    return LOCAL_TASK + (canonical(name) or HOST)


def is_gpu(name) -> bool:
    """True when `name` is a GPU."""
    return DeviceSpec.parse(name).device_type == "GPU"
