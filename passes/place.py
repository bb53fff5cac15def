"""place: assigns every op a device and makes each cross-device edge an explicit ``copy_to_device``.

Before this pass an op's ``device`` is what the user's ``tf.device`` scope asked for (``""``:
nothing). The rules, as TF's placer applies them:

- a GPU request is honoured when that GPU is present and the op has a GPU kernel; otherwise,
  with soft placement the op goes to the host CPU, and without it placement fails with an
  `InvalidArgumentError` naming the op, its source line and the device;
- a CPU request puts the op on the host;
- an op without a request goes to GPU 0 when a GPU is present and the op has a GPU kernel,
  except scalar bookkeeping whose operands all live on the host (a step counter stays there);
- a constant is materialised on each device that reads it, never copied.

Guarantees afterwards: every op carries its canonical device (``/device:GPU:0``), every operand
lives on its user's device (a ``copy_to_device`` op, placed on the target, sits on each edge
that crosses devices, one per value and target), and each result of ``@main`` is on the device
`Placement.result_devices` asks for (the host by default). When everything lands on the host
the function comes back with no devices and no copies (the form CPU-only programs always had).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fuseflow.ir.core import Block, Function, Module, Op, Value
from fuseflow.ir.devices import HOST, DeviceSpec, canonical, full_name
from fuseflow.ir.errors import InvalidArgumentError
from fuseflow.passes.rewrite import map_functions


def _no_gpu_kernel(op: Op) -> bool:
    return False


@dataclass(frozen=True)
class Placement:
    """What placement may use and must honour.

    `gpus`: GPUs present; `has_gpu_kernel(op)`: the GPU backend's answer for an op; `soft`: TF's
    ``allow_soft_placement``; `log`: called with one line per op (TF's ``log_device_placement``),
    or None; `arg_devices` / `result_devices`: device requests for ``@main``'s arguments (where
    they arrive) and results (where they must be delivered): ``""`` is the default device (a GPU
    when one is present), missing entries mean the host.
    """

    gpus: int = 0
    has_gpu_kernel: Callable[[Op], bool] = _no_gpu_kernel
    soft: bool = True
    log: Callable[[str], None] | None = None
    arg_devices: tuple = ()
    result_devices: tuple = ()

    def request(self, name: str, soft: bool = True) -> str:
        """Where a value requested on `name` lives: the GPU asked for if present, else the host."""
        spec = DeviceSpec.parse(name)
        if spec.device_type == "GPU" and (spec.device_index or 0) < self.gpus:
            return canonical(name)
        if spec.device_type is None and self.gpus:
            return canonical("/gpu:0")
        return HOST

    def resolve(self, op: Op, operand_devices: list) -> str:
        """The device `op` runs on (see the module docstring); raises when a hard request fails."""
        asked = op.attrs["device"] if op.name == "copy_to_device" else op.device
        spec = DeviceSpec.parse(asked)
        if spec.device_type == "CPU":
            return HOST
        if spec.device_type == "GPU":
            index = spec.device_index or 0
            if index < self.gpus and self.has_gpu_kernel(op):
                return canonical(asked)
            if not self.soft:
                raise _placement_error(op, asked, index < self.gpus, self.gpus)
            return HOST
        if not self.gpus or not self.has_gpu_kernel(op):
            return HOST
        if all(r.type.shape == () for r in op.results) and all(d in (HOST, None) for d in operand_devices):
            return HOST  # scalar bookkeeping on host values: a launch would cost more than it computes
        return canonical("/gpu:0")


def _placement_error(op: Op, asked: str, present: bool, gpus: int) -> InvalidArgumentError:
    where = f" ({op.loc.file}:{op.loc.line})" if op.loc.file else ""
    name = op.loc.name or op.name
    devices = ", ".join(full_name(d) for d in [HOST] + [f"/device:GPU:{i}" for i in range(gpus)])
    why = (f"no supported kernel for GPU devices is available for op '{op.name}'" if present
           else f"no device matching {full_name(asked)} is present (available devices: {devices})")
    return InvalidArgumentError(
        f"Cannot assign a device for operation '{name}'{where}: could not satisfy explicit device specification "
        f"'{full_name(asked)}' because {why}. Set allow_soft_placement=True in the session config to place it on "
        "the CPU instead.", name)


class _Placer:
    """Builds the placed function: ops in order, copies on demand, constants per device."""

    def __init__(self, fn: Function, placement: Placement) -> None:
        self.fn, self.p = fn, placement
        self.block = Block([a.type for a in fn.args])
        self.value: dict[Value, Value] = dict(zip(fn.args, self.block.args))
        self.where: dict[Value, str] = {}
        for i, arg in enumerate(self.block.args):
            asked = placement.arg_devices[i] if i < len(placement.arg_devices) else HOST
            self.where[arg] = placement.request(asked)
        self.copies: dict = {}  # (new value, device) -> the value there

    def device_of(self, old: Value):
        """Where an old value lives now (None: a constant, materialised wherever it is read)."""
        if _is_constant(old):
            return None
        return self.where[self.value[old]]

    def on(self, old: Value, device: str, user: Op) -> Value:
        """The new value of `old` on `device`: itself, a constant made there, or a copy."""
        if _is_constant(old):
            key = (old, device)
            if key not in self.copies:
                const = old.owner
                self.copies[key] = self.emit(Op("constant", (), const.attrs, [old.type], (), const.loc, device))
            return self.copies[key]
        new = self.value[old]
        if self.where[new] == device:
            return new
        key = (new, device)
        if key not in self.copies:
            loc = old.owner.loc if isinstance(old.owner, Op) else user.loc
            self.copies[key] = self.emit(Op("copy_to_device", (new,), {"device": device}, [new.type], (), loc, device))
        return self.copies[key]

    def emit(self, op: Op) -> Value:
        self.block.ops.append(op)
        for r in op.results:
            self.where[r] = op.device
        return op.results[0] if op.results else None

    def run(self) -> Function:
        for op in self.fn.ops[:-1]:
            if op.name == "constant":
                continue  # made where it is read
            device = self.p.resolve(op, [self.device_of(v) for v in op.operands])
            operands = [self.on(v, device, op) for v in op.operands]
            new = Op(op.name, operands, op.attrs, [r.type for r in op.results], op.regions, op.loc, device)
            self.emit(new)
            self.value.update(zip(op.results, new.results))
        results = []
        for i, v in enumerate(self.fn.results):
            asked = self.p.result_devices[i] if i < len(self.p.result_devices) else HOST
            results.append(self.on(v, self.p.request(asked), self.fn.body.terminator))
        self.block.ops.append(Op("return", results, {}, ()))
        return Function(self.fn.name, self.block)


def _is_constant(v: Value) -> bool:
    return isinstance(v.owner, Op) and v.owner.name == "constant"


def _strip_devices(fn: Function) -> Function:
    """`fn` with every device cleared: the all-host form."""
    block = Block([a.type for a in fn.args])
    value = dict(zip(fn.args, block.args))
    for op in fn.ops:
        new = Op(op.name, [value[v] for v in op.operands], op.attrs, [r.type for r in op.results], op.regions,
                 op.loc)
        block.ops.append(new)
        value.update(zip(op.results, new.results))
    return Function(fn.name, block)


def place_function(fn: Function, placement: Placement) -> Function:
    """`fn` placed (see the module docstring)."""
    placed = _Placer(fn, placement).run()
    args_on_host = all(placement.request(d) == HOST for d in placement.arg_devices)
    if args_on_host and all(op.device in (HOST, "") for op in placed.ops):
        # All on the host: the input as it was (same op order), without device requests.
        placed = _strip_devices(fn) if any(op.device for op in fn.ops) else fn
    if placement.log is not None:
        for op in placed.ops[:-1]:
            placement.log(f"{op.loc.name or op.name}: ({op.name}): {full_name(op.device)}")
    return placed


def place(module: Module, placement: Placement | None = None) -> Module:
    """Places every function of `module` (``@main``'s argument and result devices come from `placement`)."""
    placement = placement or Placement()
    return map_functions(module, lambda fn: place_function(fn, placement))
