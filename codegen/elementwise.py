"""Elementwise regions as one loop nest: ``fused`` ops and single elementwise ops alike.

A region (a `Block` whose arguments are the kernel's inputs, ending in ``yield``) of
elementwise ops becomes one ``kernel(out0.., in0.., const0..)`` that walks the loop
domain (the broadcast of the yielded shapes) once and computes every yielded value
per element in registers: no intermediate arrays. Every value of the region is a
function of the domain index (numpy broadcasting composes), so each operand is read
through its own broadcast subscript. A single elementwise op is compiled as a
one-op region by the same generator.

Reductions inside regions are a later step: they will add inner loops (and
accumulators) under the outer domain loops that this generator writes.
"""

from __future__ import annotations

import numpy as np

from fuseflow.codegen import scalar
from fuseflow.codegen.source import (
    Source,
    array_arg,
    array_types,
    broadcast_index,
    compile_kernel,
    kernel_header,
)
from fuseflow.ir.core import Block, Op
from fuseflow.ir.dtypes import as_dtype
from fuseflow.ir.opdefs import OPS, broadcast_shapes
from fuseflow.ir.types import TensorType


class ElementwiseKernel:
    """The compiled kernel of an elementwise region; call with the input arrays, get a tuple."""

    def __init__(self, block: Block, consts, source: str) -> None:
        self.source = source
        results = block.terminator.operands
        self._outs = [(v.type.shape, v.type.dtype.np) for v in results]
        self._consts = [array_arg(np.asarray(c, order="C")) for c in consts]
        const_types = [TensorType(as_dtype(c.dtype), c.shape) for c in consts]
        types = array_types([v.type for v in results], [a.type for a in block.args] + const_types)
        self._kernel = compile_kernel(source, types)

    def __call__(self, *inputs):
        outs = tuple(np.empty(shape, dtype) for shape, dtype in self._outs)
        self._kernel(*map(array_arg, outs), *map(array_arg, inputs), *self._consts)
        return outs


def compile_region(block: Block) -> ElementwiseKernel:
    """One kernel for an elementwise region (ops may include constants, broadcast_to, cast, select)."""
    source, consts = region_source(block)
    return ElementwiseKernel(block, consts, source)


def compile_elementwise(op: Op) -> ElementwiseKernel:
    """A single elementwise op, compiled as a one-op region."""
    return compile_region(single_op_region(op))


def single_op_region(op: Op) -> Block:
    """``^bb(args): r = op(args); yield r`` for an op of the elementwise category."""
    block = Block([v.type for v in op.operands])
    inner = Op(op.name, block.args, dict(op.attrs), [r.type for r in op.results], loc=op.loc)
    block.ops = [inner, Op("yield", inner.results, {}, ())]
    return block


def _live_ops(block: Block):
    """The region's ops that the yielded values need, in order."""
    needed = set(block.terminator.operands)
    live = []
    for op in reversed(block.ops[:-1]):
        if any(r in needed for r in op.results):
            live.append(op)
            needed.update(op.operands)
    return live[::-1]


def region_source(block: Block):
    """The kernel source of an elementwise region and the constant arrays it reads."""
    results = block.terminator.operands
    domain = broadcast_shapes(*[v.type.shape for v in results])
    ops = _live_ops(block)
    consts = [op for op in ops if op.name == "constant"]
    src = Source(kernel_header(len(results), len(block.args), [f"const{i}" for i in range(len(consts))]))
    loop_vars = [f"i{d}" for d in range(len(domain))]
    for d, line in enumerate(_domain_sizes(results, domain)):
        src(f"n{d} = {line}")
    names = {}
    with src.loops(loop_vars, [f"n{d}" for d in range(len(domain))]):
        used = {v for op in ops for v in op.operands} | set(results)
        for i, arg in enumerate(block.args):
            if arg in used:
                names[arg] = _load(src, f"a{i}", f"in{i}", arg, domain, loop_vars)
        for k, op in enumerate(ops):
            _emit_op(src, op, k, names, consts, domain, loop_vars)
        for i, v in enumerate(results):
            ref = f"out{i}{broadcast_index(v.type.shape, domain, loop_vars)}"
            src(f"{ref} = {scalar.store(names[v], v.type.dtype)}")
    return src.text(), [op.attrs["value"] for op in consts]


def _domain_sizes(results, domain):
    """Where each domain dim's size is read at run time: an output that spans it."""
    lines = []
    for d, size in enumerate(domain):
        for i, v in enumerate(results):
            shape = v.type.shape
            j = d - (len(domain) - len(shape))
            if j >= 0 and shape[j] == size:
                lines.append(f"out{i}.shape[{j}]")
                break
    return lines


def _load(src: Source, name: str, array: str, value, domain, loop_vars) -> str:
    ref = f"{array}{broadcast_index(value.type.shape, domain, loop_vars)}"
    src(f"{name} = {scalar.load(ref, value.type.dtype)}")
    return name


def _emit_op(src: Source, op: Op, k: int, names: dict, consts: list, domain, loop_vars) -> None:
    if op.name == "constant":
        names[op.results[0]] = _load(src, f"c{k}", f"const{consts.index(op)}", op.results[0], domain, loop_vars)
        return
    if OPS[op.name].category != "elementwise" or len(op.results) != 1:
        raise NotImplementedError(f"op '{op.name}' ({OPS[op.name].category}) inside an elementwise region")
    result = op.results[0]
    expr = scalar.emit(op.name, [names[v] for v in op.operands], [v.type.dtype for v in op.operands],
                       op.attrs, result.type.dtype)
    names[result] = f"v{k}"
    src(f"v{k} = {expr}")
