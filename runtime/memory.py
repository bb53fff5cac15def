"""Buffer planning: intermediate values whose lifetimes do not overlap share one buffer.

`plan_buffers` walks a function in execution order. A value gets a buffer when
the kernel that defines it can write into a given array (``writes_into``) and
it is neither a function result (those go back to the caller, fresh each run)
nor an argument or constant. A buffer returns to the free pool after the last
use of the value it holds (a ``reshape`` view keeps its operand's buffer alive
as long as the view is used), and the next value of the same shape and dtype
takes it. Buffers live as long as the executable, so a run allocates only its
results. Values on different devices never share a buffer (`BufferPlan.devices`
says where each buffer lives).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fuseflow.ir.core import Function, Value

VIEW_OPS = {"reshape"}


@dataclass
class BufferPlan:
    """``buffer_of[value] = i``; ``buffers[i] = (shape, numpy dtype)``; ``devices[i]``: the device of
    the ops writing it (``""``: the host)."""

    buffer_of: dict
    buffers: list
    devices: list = field(default_factory=list)

    @property
    def planned_values(self) -> int:
        return len(self.buffer_of)


def _last_uses(fn: Function) -> dict:
    """Value -> index of the op that uses it last (views extend their operand's life)."""
    last: dict[Value, int] = {}
    ops = fn.ops
    for i, op in enumerate(ops):
        for v in op.operands:
            last[v] = i
    for i in range(len(ops) - 1, -1, -1):  # a view's operand lives as long as the view
        op = ops[i]
        if op.name in VIEW_OPS:
            src = op.operands[0]
            last[src] = max(last.get(src, i), last.get(op.results[0], i))
    return last


def _escaping(fn: Function) -> set:
    """The results and every value a result is a view of: they must not live in reused buffers."""
    out = set(fn.results)
    for op in reversed(fn.ops[:-1]):
        if op.name in VIEW_OPS and op.results[0] in out:
            out.add(op.operands[0])
    return out


def plan_buffers(fn: Function, writes_into) -> BufferPlan:
    """Assigns buffers to the results of ops for which `writes_into(op)` is true."""
    results = _escaping(fn)
    last = _last_uses(fn)
    free: dict[tuple, list[int]] = {}
    buffer_of: dict[Value, int] = {}
    buffers: list = []
    devices: list = []
    dying: dict[int, list] = {}
    for i, op in enumerate(fn.ops[:-1]):
        if writes_into(op):
            for r in op.results:
                if r in results or r not in last:
                    continue
                key = (r.type.shape, r.type.dtype.np, op.device)
                pool = free.get(key)
                if pool:
                    buffer_of[r] = pool.pop()
                else:
                    buffer_of[r] = len(buffers)
                    buffers.append(key[:2])
                    devices.append(op.device)
                dying.setdefault(last[r], []).append(r)
        for v in dying.pop(i, []):  # values whose last use is this op: their buffers are free again
            b = buffer_of[v]
            free.setdefault((*buffers[b], devices[b]), []).append(b)
    return BufferPlan(buffer_of, buffers, devices)
