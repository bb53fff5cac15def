"""Graphviz output of a module: one node per op, one edge per value, a cluster per fused kernel."""

from __future__ import annotations

from fuseflow.ir.core import Module, Op


def _label(op: Op) -> str:
    types = ", ".join(str(r.type) for r in op.results)
    return f"{op.name}\\n{types}" if types else op.name


def module_to_dot(module: Module) -> str:
    lines = ["digraph fuseflow {", "  node [shape=box, fontname=monospace, fontsize=10];"]
    ids: dict = {}

    def node(key, label, indent="  ", shape=None):
        ids[key] = f"n{len(ids)}"
        extra = f", shape={shape}" if shape else ""
        lines.append(f'{indent}{ids[key]} [label="{label}"{extra}];')

    for fn in module.functions.values():
        for i, arg in enumerate(fn.args):
            node(arg, f"%arg{i}\\n{arg.type}", shape="ellipse")
        for k, op in enumerate(fn.ops):
            if op.regions:
                lines.append(f"  subgraph cluster_{k} {{")
                lines.append(f'    label="fused kernel {k}"; style=rounded; color=blue;')
                body = op.regions[0]
                for arg, outer in zip(body.args, op.operands):
                    ids[arg] = ids[outer]
                for inner in body.ops[:-1]:
                    node(inner, _label(inner), indent="    ")
                    for r in inner.results:
                        ids[r] = ids[inner]
                lines.append("  }")
                for r, y in zip(op.results, body.terminator.operands):
                    ids[r] = ids[y]
                for inner in body.ops[:-1]:
                    _edges(lines, ids, inner)
                continue
            node(op, _label(op), shape="ellipse" if op.name == "return" else None)
            for r in op.results:
                ids[r] = ids[op]
            _edges(lines, ids, op)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edges(lines, ids, op) -> None:
    for v in op.operands:
        if v in ids and ids[v] != ids[op]:
            lines.append(f"  {ids[v]} -> {ids[op]};")
