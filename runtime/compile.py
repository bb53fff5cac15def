"""`compile_for_device`: the compile path of a traced function, for one target device.

The hook for ``@fuseflow.jit(device=...)``: the traced ``@main`` is asked, op by op, on
`device` (ops that ask for a device themselves keep their request), then goes through the
default pipeline, placement included, and becomes an `Executable`. Arguments arrive as numpy
arrays and results come back as numpy arrays; on a GPU the copies in and out are explicit
``copy_to_device`` ops in the compiled IR.
"""

from __future__ import annotations

from types import SimpleNamespace

from fuseflow.ir.core import Function, Module, Op
from fuseflow.ir.devices import canonical
from fuseflow.passes.manager import DEFAULT_PIPELINE, PassManager
from fuseflow.passes.rewrite import rewrite_function
from fuseflow.runtime.devices import placement
from fuseflow.runtime.executable import Executable


def request_device(fn: Function, device: str) -> Function:
    """A copy of `fn` whose ops that ask for no device ask for `device`."""
    asked = canonical(device)

    def rule(b, op: Op, operands):
        if op.device:
            return None
        new = Op(op.name, operands, op.attrs, [r.type for r in op.results], op.regions, op.loc, asked)
        b.block.ops.append(new)
        return new.results

    return rewrite_function(fn, rule)


def optimize_for_device(module: Module, device: str = "", soft: bool = True,
                        pipeline: str = DEFAULT_PIPELINE) -> Module:
    """`module` after `pipeline`, its ops asked on `device` ("/gpu:0", "/cpu:0"; "": TF's default rule)."""
    fn = module.main
    if device:
        fn = request_device(fn, device)
    config = SimpleNamespace(allow_soft_placement=soft, log_device_placement=False)
    return PassManager(pipeline, placement=placement(config)).run(Module([fn]))


def compile_for_device(module: Module, device: str = "", soft: bool = True) -> Executable:
    """The `Executable` of `module`'s ``@main`` with its ops on `device` (see `optimize_for_device`);
    ``executable.run(list_of_numpy_arrays)`` returns numpy arrays."""
    return Executable(optimize_for_device(module, device, soft).main)

