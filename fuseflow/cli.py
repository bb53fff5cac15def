"""The ``fuseflow`` command line.

``fuseflow ir FILE.py:FUNC`` prints the IR of the graph FUNC builds (FUNC takes
no arguments and returns its fetches); ``fuseflow ir FILE.ffir`` parses,
verifies and prints textual IR.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from fuseflow.ir.types import TensorType


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit code 2."""


def _load_function(spec: str):
    path, _, name = spec.rpartition(":")
    if not path or not name:
        raise UsageError(f"expected FILE.py:FUNC, got {spec!r}")
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    module_spec = importlib.util.spec_from_file_location("_fuseflow_user_module", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        module_spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    if not callable(getattr(module, name, None)):
        raise UsageError(f"{path} has no function named {name!r}")
    return getattr(module, name)


def graph_module(func):
    """Builds FUNC's graph and lowers its fetches, feeding every placeholder with its static type."""
    import fuseflow as tf
    from fuseflow.frontend.lowering import lower, needed_ops
    from fuseflow.session import _flatten

    graph = tf.Graph()
    with graph.as_default():
        fetches = func()
        elements: list = []
        _flatten(fetches, graph, elements)
    ops = needed_ops(elements, {})
    feeds = {op.outputs[0]: op.outputs[0].type for op in ops if op.type == "Placeholder"}
    for t, type_ in feeds.items():
        if type_.shape is None:
            raise UsageError(f"placeholder '{t.op.name}' has an unknown rank: give it a shape to print its IR")
    state = {op.outputs[0].variable: op.outputs[0].type for op in ops if op.type == "VariableV2"}
    state = {v: TensorType(t.dtype, t.shape) for v, t in state.items()}
    return lower(elements, feeds, state).module


def cmd_ir(args) -> int:
    from fuseflow.ir.parser import parse_module
    from fuseflow.ir.printer import print_module
    from fuseflow.ir.verifier import verify

    if args.target.endswith(".ffir"):
        if not os.path.isfile(args.target):
            raise UsageError(f"no such file: {args.target}")
        with open(args.target) as f:
            module = parse_module(f.read())
    else:
        module = graph_module(_load_function(args.target))
    verify(module)
    sys.stdout.write(print_module(module))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fuseflow", description="fuseflow: TF1 graphs compiled to native kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="print the IR of a graph-building function or of a .ffir file")
    ir.add_argument("target", help="FILE.py:FUNC or FILE.ffir")
    ir.set_defaults(run=cmd_ir)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as e:
        print(f"fuseflow: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        if type(e).__name__ == "ParseError":
            print(f"fuseflow: {args.target}: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
