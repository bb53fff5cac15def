"""`Executable`: a compiled ``@main`` as an ordered list of kernel steps over buffer slots.

Slots ``0..n_args-1`` hold the arguments, constants are placed in their slots
once at compile time, and each step reads its input slots and fills its output
slots. `run` returns the result slots; it never touches state itself (the
session commits new variable values only after `run` returned).

A placed function runs each op on its device (`fuseflow.runtime.devices.kernel_for`): GPU
values are device arrays, ``copy_to_device`` steps move values, and `arg_devices` says where
each argument is read (an argument that arrives elsewhere is moved there, and counted in
`fuseflow.runtime.devices.TRANSFERS`).
"""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext

import numpy as np

from fuseflow.codegen.blas import BLAS, product_flops, single_thread_limit
from fuseflow.codegen.driver import compile_driver
from fuseflow.codegen.source import numba_kernels
from fuseflow.ir.core import Function, Op
from fuseflow.ir.devices import is_gpu
from fuseflow.ir.errors import InvalidArgumentError, OpError
from fuseflow.passes.rewrite import users
from fuseflow.runtime.devices import kernel_for, move, new_buffer
from fuseflow.runtime.memory import plan_buffers

HOST_OPS = {"constant"}
# Smaller results are cheaper to allocate anew than to check for recycling (0.16 vs 0.23 us).
RECYCLE_MIN_BYTES = 1 << 16


def _nbytes(t) -> int:
    return int(np.prod(t.shape, dtype=np.int64)) * t.dtype.np.itemsize


def _aliases_input(v) -> bool:
    """True when `v` is an argument or constant, or a reshape view of one."""
    op = _root(v).owner
    return not isinstance(op, Op) or op.name in HOST_OPS


def _root(v):
    """The value `v` is a reshape view of (itself when it is none)."""
    while isinstance(v.owner, Op) and v.owner.name == "reshape":
        v = v.owner.operands[0]
    return v


def _constant(op: Op):
    """A constant's value where its op was placed: uploaded once, at compile time, for a GPU."""
    value = op.attrs["value"]
    return move(value, op.device) if is_gpu(op.device) else value


def _read_on(fn: Function, arg):
    """The device an argument's users run on (placement gives them all one), or None: as it comes
    (only copies or the return read it)."""
    for op in fn.ops[:-1]:
        if arg in op.operands and op.name != "copy_to_device":
            return op.device
    return None


class Executable:
    """Steps ``(kernel, input slots, output buffers or None, output slots, op)`` plus the result slots.

    Intermediate values live in buffers planned once (`plan_buffers`) and kept between runs.
    """

    def __init__(self, fn: Function, native: bool = False) -> None:
        slot_of = {v: i for i, v in enumerate(fn.args)}
        template: list = [None] * len(fn.args)
        on_gpu = any(is_gpu(op.device) for op in fn.ops)  # the native driver calls host kernels only
        driven = native and not on_gpu and _drivable(fn)
        with numba_kernels() if driven else nullcontext():  # a driver calls numba's versions
            kernels = {op: kernel_for(op) for op in fn.ops[:-1] if op.name not in HOST_OPS}
        self.plan = plan_buffers(fn, lambda op: getattr(kernels.get(op), "writes_into", False))
        self.buffers = [new_buffer(shape, dtype, device)
                        for (shape, dtype), device in zip(self.plan.buffers, self.plan.devices)]
        self.steps = []
        results = set(fn.results)
        self._last: dict = {}  # step index -> the result arrays it returned last run
        donor = None if on_gpu or driven else _donor(fn, kernels)
        order = [op for op in fn.ops[:-1] if op is not donor] + ([donor] if donor else [])
        for op in order:
            outs = []
            for r in op.results:
                slot_of[r] = len(template)
                outs.append(len(template))
                template.append(_constant(op) if op.name in HOST_OPS else None)
            if op.name not in HOST_OPS:
                ins = tuple(slot_of[v] for v in op.operands)
                into = None
                if all(r in self.plan.buffer_of for r in op.results):
                    into = tuple(self.buffers[self.plan.buffer_of[r]] for r in op.results)
                elif (op is not donor and getattr(kernels[op], "writes_into", False) and all(r in results for r in op.results)
                      and sum(_nbytes(r.type) for r in op.results) >= RECYCLE_MIN_BYTES
                      and not is_gpu(op.device)):  # a device view does not hold its base: no refcount proof
                    self._last[len(self.steps)] = None  # its results may be recycled (see `_recycled`)
                self.steps.append((kernels[op], ins, into, tuple(outs), op))
        self.template = template
        products = [product_flops(op) for op in fn.ops if op.name == "matmul"]
        self.single_thread_blas = max(products) < single_thread_limit() if products else None
        self.n_args = len(fn.args)
        self.arg_devices = [_read_on(fn, a) for a in fn.args]
        self._moves = [(i, d) for i, d in enumerate(self.arg_devices) if d]  # "": an all-host function
        self.result_slots = [slot_of[v] for v in fn.results]
        # Results that are arguments or constants (or views of them) alias the caller's or our own arrays.
        self.result_aliases = [_aliases_input(v) for v in fn.results]

        # The argument the last step may update in place (see `_donor`), or None.
        self.donated_arg = fn.args.index(donor.operands[2]) if donor else None
        # ``run(args)``: the result arrays of one run on `args` (every argument, in order);
        # ``run_donating(args)`` also writes the last step's result into `donated_arg`'s array
        self.run = _straight_line(self)
        self.driver = _driver(self, fn) if driven else None
        if self.driver is not None:
            self.run = _driven(self)
        if self._moves:  # arguments that arrive on another device than their readers' move first
            self.run = _moving(self._moves, self.run)
        # (a donor exists only without a driver or device moves, which wrap `run`)
        self.run_donating = _straight_line(self, donate=True) if donor else self.run

    def _run_steps(self, args) -> list:
        if self.single_thread_blas is not None:
            BLAS.use(self.single_thread_blas)
        slots = self.template.copy()
        slots[: self.n_args] = args
        for i, device in self._moves:
            slots[i] = move(slots[i], device)
        for k, (kernel, ins, into, outs, op) in enumerate(self.steps):
            if into is None and k in self._last:
                into = self._recycled(k)
            try:
                if into is None:
                    results = kernel(*[slots[i] for i in ins])
                else:
                    results = kernel(*[slots[i] for i in ins], out=into)
            except OpError:
                raise
            except Exception as e:  # a kernel's own error (e.g. an index out of range): name the op
                raise InvalidArgumentError(f"{op.name} {op.loc}: {e}", op.loc.name) from e
            for slot, value in zip(outs, results):
                slots[slot] = value
            if k in self._last:
                self._last[k] = results
        return [slots[i] for i in self.result_slots]

    def _recycled(self, k: int):
        """Last run's result arrays of step `k` when nobody else holds them any more (else None).

        Results go to the caller fresh each run; but a caller that dropped them (a training loop
        fetching a loss, a benchmark) would make us pay the page faults of a new large array for
        nothing. The references counted: our dict's tuple, the loop variable, getrefcount's own.
        """
        last = self._last[k]
        if last is not None and all(sys.getrefcount(a) == 3 for a in last):
            return last
        return None


def _moving(moves, run):
    """`run` preceded by moving each argument ``(index, device)`` of `moves` there (a no-op when it is)."""

    def run_moved(args):
        args = list(args)
        for i, device in moves:
            args[i] = move(args[i], device)
        return run(args)

    return run_moved


def _donor(fn: Function, kernels: dict):
    """The largest op that can write its result into the buffer of an argument it reads (a
    ``matmul_add`` updating a variable), when the runtime may do so: the result goes only to the
    caller, and no result is that argument or a view of it. It runs last, so every step that could
    fail has run before it touches the argument, and every other reader of the argument too."""
    uses = users(fn)
    aliased = {_root(v) for v in fn.results}
    best = None
    for op, kernel in kernels.items():
        if not getattr(kernel, "updates_in_place", False):
            continue
        target = op.operands[2]
        if target not in fn.args or target in aliased or fn.args.count(target) != 1:
            continue
        if any(_root(v) is target for v in op.operands[:2]):  # BLAS would read what it overwrites
            continue
        if any(user is not fn.ops[-1] for user in uses.get(op.results[0], [])):
            continue
        if best is None or _nbytes(op.results[0].type) > _nbytes(best.results[0].type):
            best = op
    return best


def _straight_line(exe: Executable, donate: bool = False):
    """`exe`'s steps as one generated Python function without the loop's bookkeeping (with
    `donate`, the last step writes into its addend, the argument `exe.donated_arg`).

    A call costs a few hundred nanoseconds instead of the loop's microsecond or two, which is the
    whole time of a small step. Any error falls back to `_run_steps`, which names the failing op
    (kernels write only their own outputs, so running again is safe).
    """
    env = {"exe": exe, "BLAS": BLAS}
    lines = ["def run(args):", "  try:"]
    if exe.single_thread_blas is not None:
        lines.append(f"    BLAS.use({exe.single_thread_blas})")
    names = {i: f"a{i}" for i in range(exe.n_args)}
    if exe.n_args:
        lines.append(f"    {', '.join(names.values())}, = args")
    for i, value in enumerate(exe.template):
        if value is not None:
            env[f"c{i}"] = value
            names[i] = f"c{i}"
    for k, (kernel, ins, into, outs, _op) in enumerate(exe.steps):
        env[f"k{k}"] = kernel
        call = f"k{k}({', '.join(names[i] for i in ins)}"
        if donate and k == len(exe.steps) - 1:
            call += f", out=({names[exe.donated_arg]},)"
        elif into is not None:
            env[f"o{k}"] = into
            call += f", out=o{k}"
        elif k in exe._last:
            call += f", out=exe._recycled({k})"
        lines.append(f"    r{k} = {call})")
        if k in exe._last:
            lines.append(f"    exe._last[{k}] = r{k}")
        for j, slot in enumerate(outs):
            names[slot] = f"r{k}[{j}]"
    lines.append(f"    return [{', '.join(names[i] for i in exe.result_slots)}]")
    lines += ["  except Exception:", "    return exe._run_steps(args)"]
    exec("\n".join(lines) + "\n", env)  # noqa: S102  (our own generated source)
    return env["run"]


# An executable whose results hold more elements than this gains nothing from a native driver.
DRIVER_MAX_ELEMENTS = 1 << 15


def _drivable(fn: Function) -> bool:
    """Whether `fn` is small enough, and of two or more kernels, for a native driver."""
    values = [r for op in fn.ops[:-1] for r in op.results]
    if sum(op.name not in HOST_OPS for op in fn.ops[:-1]) < 2:
        return False
    if sum(int(np.prod(v.type.shape, dtype=np.int64)) for v in values) > DRIVER_MAX_ELEMENTS:
        return False
    return not any(v.type.dtype.np == np.float16 or v.type.dtype.is_string for v in list(fn.args) + values)


def _driver(exe: Executable, fn: Function):
    """A native driver for a small executable (`codegen.driver`, see `_drivable`), else None."""
    steps = [(kernel, ins, outs) for kernel, ins, _into, outs, _op in exe.steps]
    arg_types = [(v.type.dtype.np, len(v.type.shape)) for v in fn.args]
    try:
        return compile_driver(steps, arg_types, exe.template, exe.result_slots)
    except Exception:  # a driver is an optimisation: the steps still run (tests see the bug)
        if os.environ.get("FUSEFLOW_VERIFY", "") not in ("", "0"):
            raise
        return None


def _driven(exe: Executable):
    """``run`` through the driver (its products are loops: no BLAS call, no thread setting)."""
    driver, steps = exe.driver, exe._run_steps

    def run(args):
        try:
            return list(driver(*args))
        except Exception:  # noqa: BLE001  (a strided or read-only argument: the steps take it)
            return steps(args)

    return run
