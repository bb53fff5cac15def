"""fuse: group elementwise ops and reductions into ``fused`` ops, one kernel each.

Rules (guarantees afterwards):
- Producer->consumer chains of elementwise ops (broadcast_to, cast, select
  included) over one loop domain (the same result shape) share one ``fused`` op.
  A producer whose result is smaller than its consumer's (read by broadcasting)
  is not pulled in: it is computed once and read by index.
- A reduction (sum, mean, max, min, prod) absorbs the elementwise producers of
  its operand (same shape) and the elementwise consumers that read its result
  over the same outer domain; all reductions of one group share the operand
  shape ``S`` and the axes ``A``. Members have result shape ``S``, ``S`` with
  ``A`` kept as 1, or ``S`` without ``A`` (the outer domain); what reads an
  outer member is itself over the outer domain, and unless ``A`` is a prefix of
  the dims an outer member reads only outer members and scalars. Row softmax is
  one group.
- Contractions, data movement, random numbers and argmax/argmin stay as they
  are; a matmul's elementwise epilogue is one group after it.
- A group never spans devices: its members share one ``device``, which the
  ``fused`` op keeps (a cross-device edge is a ``copy_to_device``, never fused).
- Every group is convex: no path leaves it and comes back. Values a group
  defines that anything outside it uses are the fused op's results
  (multi-output); nothing is computed twice. Small constants are copied into
  the region; larger ones are operands.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Block, Function, Module, Op, Value
from fuseflow.ir.opdefs import OPS, normalized_axes
from fuseflow.passes.dce import dce_function
from fuseflow.passes.rewrite import clone, map_functions

FUSED_REDUCTIONS = {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"}
INLINE_CONSTANT_LIMIT = 64  # elements: smaller constants are copied into the region


def is_fusible(op: Op) -> bool:
    if op.name in FUSED_REDUCTIONS:
        return True
    return op.name in OPS and OPS[op.name].category == "elementwise"


def outer_shapes(shape, axes):
    """(S with axes kept as 1, S without axes)."""
    keep = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return keep, tuple(d for i, d in enumerate(shape) if i not in axes)


def group_domain(ops) -> tuple | None:
    """The loop domain ``(S, A)`` of a candidate group (A=None: no reduction), or None if it has none."""
    reductions = {(op.operands[0].type.shape, normalized_axes(op)) for op in ops if op.name in FUSED_REDUCTIONS}
    if len(reductions) > 1:
        return None
    if not reductions:
        shapes = {op.results[0].type.shape for op in ops}
        return (shapes.pop(), None) if len(shapes) == 1 else None
    shape, axes = reductions.pop()
    keep, squeezed = outer_shapes(shape, axes)
    members = set(ops)
    for op in ops:
        if op.name in FUSED_REDUCTIONS:
            continue
        result = op.results[0].type.shape
        if result not in (shape, keep, squeezed):
            return None
        if result == shape and result != keep:  # a full-domain op reads group values of shape S or keep only
            for v in op.operands:
                if v.owner in members and v.type.shape not in (shape, keep):
                    return None
    if axes and not _outer_reads_legal(ops, squeezed, axes == tuple(range(len(axes)))):
        return None
    return shape, axes


def _outer_reads_legal(ops, squeezed, prefix: bool) -> bool:
    """Members over the outer domain (result shape S without A) are indexed by the outer loops alone:
    a member that reads one is itself over the outer domain (S- or keep-shaped ones would mix two index
    spaces), and unless A is a prefix of S's dims (numpy aligns the outer shape with S's trailing dims,
    so any operand broadcasts as over S) an outer member reads only outer members and scalars."""
    outer = {op for op in ops if op.results[0].type.shape == squeezed}
    for op in ops:
        if op.name in FUSED_REDUCTIONS:
            continue
        if op not in outer:
            if any(v.owner in outer for v in op.operands):
                return False
        elif not prefix and any(v.owner not in outer and v.type.shape != () for v in op.operands):
            return False
    return True


@dataclass
class _Groups:
    """Union of ops into groups, with bitmask reachability for the convexity check."""

    index: dict
    ancestors: list
    group_of: dict = field(default_factory=dict)

    def members(self, gid) -> list:
        return [op for op, g in self.group_of.items() if g == gid]

    def convex(self, ops) -> bool:
        mask = 0
        for op in ops:
            mask |= 1 << self.index[op]
        for op in ops:
            for v in op.operands:
                p = v.owner
                if isinstance(p, Op) and p not in ops and self.ancestors[self.index[p]] & mask:
                    return False
        return True

    def acyclic_with(self, ops) -> bool:
        """Making `ops` one group keeps the graph of kernels acyclic: no path leaves the group and comes
        back through other groups (a path enters another group at one member and may leave it at any
        other). Each group is convex on its own, yet group A may read group B's x while B reads A's y."""
        inside, mask, upstream = set(ops), 0, 0
        for op in ops:
            mask |= 1 << self.index[op]
            upstream |= self.ancestors[self.index[op]]
        others: dict = {}
        for op, gid in self.group_of.items():
            if op not in inside:
                others.setdefault(gid, []).append(self.index[op])
        groups = []  # (members, their ancestors) of the other groups that have several members
        for members in others.values():
            if len(members) > 1:
                m = a = 0
                for i in members:
                    m, a = m | 1 << i, a | self.ancestors[i]
                groups.append((m, a))
        reached, grew = mask, True
        while grew:  # the groups downstream of the new one, group jumps included
            grew = False
            for m, a in groups:
                if a & reached and not m & reached:
                    if m & upstream:
                        return False
                    reached, grew = reached | m, True
        return True


def _ancestors(ops) -> tuple[dict, list]:
    index = {op: i for i, op in enumerate(ops)}
    anc = [0] * len(ops)
    for i, op in enumerate(ops):
        for v in op.operands:
            p = v.owner
            if isinstance(p, Op) and p in index:
                j = index[p]
                anc[i] |= anc[j] | (1 << j)
    return index, anc


def find_groups(fn: Function) -> _Groups:
    """Greedy producer->consumer grouping in program order."""
    ops = fn.ops[:-1]
    index, anc = _ancestors(ops)
    g = _Groups(index, anc)
    next_id = 0
    for op in ops:
        if not is_fusible(op):
            continue
        candidates = []
        for v in op.operands:
            gid = g.group_of.get(v.owner)
            if gid is not None and gid not in candidates:
                candidates.append(gid)
        chosen = _choose(g, op, candidates)
        if chosen is None:
            chosen, next_id = next_id, next_id + 1
        for gid in ([chosen] if isinstance(chosen, int) else chosen):
            for m in g.members(gid):
                g.group_of[m] = chosen if isinstance(chosen, int) else chosen[0]
        g.group_of[op] = chosen if isinstance(chosen, int) else chosen[0]
    return g


def _legal(g: _Groups, op: Op, gids) -> bool:
    ops = [op] + [m for gid in gids for m in g.members(gid)]
    if len({m.device for m in ops}) > 1:  # one kernel runs on one device
        return False
    return group_domain(ops) is not None and g.convex(set(ops)) and g.acyclic_with(ops)


def _choose(g: _Groups, op: Op, candidates):
    """All producer groups with `op` if legal, else the first legal one, else None (a new group)."""
    if candidates and _legal(g, op, candidates):
        return candidates if len(candidates) > 1 else candidates[0]
    for gid in candidates:
        if _legal(g, op, [gid]):
            return gid
    return None


def explain_unfused(fn: Function, g: _Groups) -> list[tuple[Op, Op, str]]:
    """For each producer->consumer edge between different kernels, why they were not fused."""
    notes = []
    for op in fn.ops[:-1]:
        for v in op.operands:
            p = v.owner
            if not isinstance(p, Op) or p.name == "constant":
                continue
            gp, gc = g.group_of.get(p), g.group_of.get(op)
            if gp is not None and gp == gc:
                continue
            notes.append((p, op, _edge_reason(p, op, g)))
    return notes


def _edge_reason(p: Op, c: Op, g: _Groups) -> str:
    for side in (p, c):
        if not is_fusible(side):
            category = OPS[side.name].category if side.name in OPS else "region"
            if category == "contraction":
                return f"'{side.name}' is a library call (BLAS); only its elementwise epilogue fuses"
            return f"'{side.name}' ({category}) is not fused"
    if p.device != c.device:
        return f"on different devices: {p.device or 'host'} vs {c.device or 'host'}"
    both = _group_or_self(g, p) + _group_or_self(g, c)
    if not g.convex(set(both)):
        return "fusing the two kernels would make a path leave the kernel and come back (not convex)"
    domains = sorted({f"{op.operands[0].type} over axes {list(normalized_axes(op))}"
                      for op in both if op.name in FUSED_REDUCTIONS})
    if len(domains) > 1:
        return "reductions over different domains: " + "; ".join(domains)
    pt, ct = p.results[0].type, c.results[0].type
    if pt.size is not None and ct.size is not None and pt.size < ct.size:
        return f"producer {pt} is read by broadcasting into {ct}: computed once, read by index"
    return f"different loop domains: {pt} vs {ct}"


def _group_or_self(g: _Groups, op: Op) -> list:
    gid = g.group_of.get(op)
    return [op] if gid is None else g.members(gid)


# ----------------------------------------------------------------------------- rebuilding


def _units(fn: Function, g: _Groups) -> list[list[Op]]:
    """Groups (as op lists) and single ops, in a topological order of the units."""
    by_group: dict = {}
    units = []
    for op in fn.ops[:-1]:
        gid = g.group_of.get(op)
        if gid is None:
            units.append([op])
        elif gid not in by_group:
            by_group[gid] = [op]
            units.append(by_group[gid])
        else:
            by_group[gid].append(op)
    unit_of = {op: i for i, unit in enumerate(units) for op in unit}
    deps = [{unit_of[v.owner] for op in unit for v in op.operands if v.owner in unit_of} - {i}
            for i, unit in enumerate(units)]
    users: list[list[int]] = [[] for _ in units]
    for i, ds in enumerate(deps):
        for d in ds:
            users[d].append(i)
    waiting = [len(ds) for ds in deps]
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(units[i])
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    assert len(order) == len(units), "fusion produced a cycle between kernels"
    return order


def _emit_group(b: Builder, ops: list[Op], mapping: dict, used_outside) -> None:
    members = set(ops)
    inputs: list[Value] = []
    for op in ops:
        for v in op.operands:
            if v.owner not in members and v not in inputs and not _inline_constant(v):
                inputs.append(v)
    outputs = [r for op in ops for r in op.results if r in used_outside]
    block = Block([v.type for v in inputs])
    inner = dict(zip(inputs, block.args))
    for op in ops:
        for v in op.operands:
            if v not in inner and _inline_constant(v):
                inner[v] = clone_into(block, v.owner)[0]
        new = Op(op.name, [inner[v] for v in op.operands], op.attrs, [r.type for r in op.results], (), op.loc)
        block.ops.append(new)
        inner.update(zip(op.results, new.results))
    block.ops.append(Op("yield", [inner[r] for r in outputs], {}, ()))
    fused = Op("fused", [mapping[v] for v in inputs], {}, [r.type for r in outputs], (block,), ops[-1].loc,
               ops[-1].device)
    b.block.ops.append(fused)
    mapping.update(zip(outputs, fused.results))


def clone_into(block: Block, op: Op):
    new = Op(op.name, (), op.attrs, [r.type for r in op.results], (), op.loc)
    block.ops.append(new)
    return new.results


def _inline_constant(v: Value) -> bool:
    op = v.owner
    return isinstance(op, Op) and op.name == "constant" and v.type.size <= INLINE_CONSTANT_LIMIT


def fuse_function(fn: Function) -> Function:
    g = find_groups(fn)
    b = Builder([a.type for a in fn.args])
    mapping = dict(zip(fn.args, b.args))
    for unit in _units(fn, g):
        if len(unit) == 1:
            op = unit[0]
            b.loc, b.device = op.loc, op.device
            mapping.update(zip(op.results, clone(b, op, [mapping[v] for v in op.operands])))
            continue
        members = set(unit)
        outside = {v for op in fn.ops if op not in members for v in op.operands}
        _emit_group(b, unit, mapping, outside)
    fn = b.finish([mapping[v] for v in fn.results], fn.name)
    return _drop_dead_constants(fn)


def _drop_dead_constants(fn: Function) -> Function:
    return dce_function(fn)


def fuse(module: Module) -> Module:
    """Groups ops into ``fused`` kernels (see the module docstring for the rules)."""
    return map_functions(module, fuse_function)
