"""The ``fuseflow`` command line.

``fuseflow ir FILE.py:FUNC`` prints the IR of the graph FUNC builds (FUNC takes
no arguments and returns its fetches, or is a ``@fuseflow.jit`` function whose
argument types ``--shapes`` gives) after the default pass pipeline;
``fuseflow ir FILE.ffir`` parses textual IR, runs the pipeline and prints it.
Ops are placed on this machine's devices (``on "/device:GPU:0"`` and
``copy_to_device`` ops appear when a GPU is present or requested).
``--before/--after PASS`` and ``--all`` show other stages, ``--format dot``
writes Graphviz, ``--explain`` says why neighbouring ops were not fused.
``fuseflow bench [--quick] [--only NAME,...]`` runs the benchmark harness (fuseflow.bench.harness).

``fuseflow cache info`` says where the on-disk kernel cache is, whether it is
on, and how many entries of what total size it holds; ``fuseflow cache clear``
deletes its entries (see `fuseflow.codegen.disk_cache`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from types import SimpleNamespace

from fuseflow.ir.types import TensorType


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit code 2."""


def _load_function(spec: str):
    path, _, name = spec.rpartition(":")
    if not path or not name:
        raise UsageError(f"expected FILE.py:FUNC or FILE.ffir, got {spec!r}")
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


def lower_graph(func):
    """Builds FUNC's graph and lowers its fetches (a `Lowered`), feeding every placeholder with its static type."""
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
    return lower(elements, feeds, state)


def jit_module(func, shapes: str | None):
    """The lowering of a `@fuseflow.jit` function for argument types such as ``"f32[?,784] f32[784,10]"``."""
    from fuseflow.ir.parser import ParseError, parse_type

    if not shapes:
        raise UsageError(f"{func.__name__} is a @fuseflow.jit function: give its argument types with --shapes, "
                         "e.g. --shapes 'f32[?,784] f32[784,10]'")
    specs = []
    for text in _split_types(shapes):
        try:
            specs.append(parse_type(text))
        except ParseError as e:
            raise UsageError(f"--shapes: {text!r}: {e}") from None
    return func.lowered(*specs)


def _split_types(text: str) -> list[str]:
    """Types separated by spaces or by commas outside brackets."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if depth == 0 and ch in ", ":
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in parts + [current] if p]


def _input_module(args):
    """The module to print and the devices its arguments and results live on (.ffir: the host)."""
    from fuseflow.ir.parser import parse_module
    from fuseflow.jit import JitFunction

    target = args.target
    if target.endswith(".ffir"):
        if not os.path.isfile(target):
            raise UsageError(f"no such file: {target}")
        with open(target) as f:
            return parse_module(f.read()), (), ()
    func = _load_function(target)
    lowered = jit_module(func, args.shapes) if isinstance(func, JitFunction) else lower_graph(func)
    return lowered.module, lowered.arg_devices, lowered.result_devices


def _stages_to_show(args, names) -> list[str]:
    if args.all:
        return ["input"] + names
    for flag, pass_name in (("--after", args.after), ("--before", args.before)):
        if pass_name is not None and pass_name not in names:
            raise UsageError(f"{flag} {pass_name}: not in the pipeline ({', '.join(names)})")
    if args.after:
        return [args.after]
    if args.before:
        i = names.index(args.before)
        return ["input" if i == 0 else names[i - 1]]
    return [names[-1] if names else "input"]


def _explain(stages) -> str:
    """Comment lines: for each producer->consumer edge between kernels, why it was not fused."""
    from fuseflow.passes.fuse import explain_unfused, find_groups

    named = dict(stages)
    before = named.get("place") or named.get("dce") or stages[-1][1]
    lines = []
    for fn in before.functions.values():
        for p, c, why in explain_unfused(fn, find_groups(fn)):
            lines.append(f"# not fused: {p.name} {p.loc} -> {c.name} {c.loc}: {why}")
    return "\n".join(lines) + ("\n" if lines else "# every producer->consumer edge is fused\n")


def cmd_ir(args) -> int:
    from fuseflow.ir.dot import module_to_dot
    from fuseflow.ir.printer import print_module
    from fuseflow.ir.verifier import verify
    from fuseflow.passes.manager import PassManager
    from fuseflow.runtime.devices import placement

    module, arg_devices, result_devices = _input_module(args)
    verify(module)
    # This machine's devices, with soft placement: the IR shows where a session would run each op.
    config = SimpleNamespace(allow_soft_placement=True, log_device_placement=False)
    try:
        manager = PassManager(args.pipeline, verify=True, keep_stages=True,
                              placement=placement(config, arg_devices, result_devices))
    except ValueError as e:
        raise UsageError(str(e)) from None
    manager.run(module)
    stages = dict(manager.stages)
    for name in _stages_to_show(args, manager.names):
        if args.format == "dot":
            sys.stdout.write(module_to_dot(stages[name]))
            continue
        if args.all or args.after or args.before:
            sys.stdout.write(f"// ----- {'input' if name == 'input' else 'after ' + name}\n")
        sys.stdout.write(print_module(stages[name]))
    if args.explain:
        sys.stdout.write(_explain(manager.stages))
    return 0


def _add_bench(sub) -> None:
    """``fuseflow bench``: the harness owns its flags; an unknown workload is a usage error."""
    from fuseflow.bench import harness

    def cmd_bench(args) -> int:
        try:
            harness.run(args)
        except harness.UnknownWorkload as e:
            raise UsageError(str(e)) from None
        return 0

    bench = sub.add_parser("bench", help="benchmark fuseflow against numpy and the installed peers")
    harness.add_arguments(bench)
    bench.set_defaults(run=cmd_bench)


def cmd_cache(args) -> int:
    from fuseflow.codegen import disk_cache

    if args.action == "clear":
        try:
            removed = disk_cache.clear()
        except OSError as e:
            raise UsageError(f"cannot clear {disk_cache.entries_dir()}: {e}") from None
        print(f"removed {removed} {'entry' if removed == 1 else 'entries'} from {disk_cache.entries_dir()}")
        return 0
    info = disk_cache.info()
    switch = os.environ.get(disk_cache.ENV_SWITCH)
    state = "yes" if info["enabled"] else f"no ({disk_cache.ENV_SWITCH}={switch})"
    print(f"directory: {info['directory']}\nenabled: {state}\nentries: {info['entries']}\n"
          f"size: {info['bytes'] / 1024:.1f} KiB ({info['bytes']} bytes)")
    return 0


def main(argv=None) -> int:
    from fuseflow.passes.manager import DEFAULT_PIPELINE

    parser = argparse.ArgumentParser(prog="fuseflow", description="fuseflow: TF1 graphs compiled to native kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="print the IR of a graph-building function or of a .ffir file")
    ir.add_argument("target", help="FILE.py:FUNC or FILE.ffir")
    stage = ir.add_mutually_exclusive_group()
    stage.add_argument("--after", metavar="PASS", help="show the IR after PASS")
    stage.add_argument("--before", metavar="PASS", help="show the IR before PASS")
    stage.add_argument("--all", action="store_true", help="show the IR before and after every pass")
    ir.add_argument("--pipeline", default=DEFAULT_PIPELINE, help=f"passes to run (default {DEFAULT_PIPELINE})")
    ir.add_argument("--format", choices=("text", "dot"), default="text", help="text IR or Graphviz dot")
    ir.add_argument("--explain", action="store_true", help="say why neighbouring ops were not fused")
    ir.add_argument("--shapes", metavar="TYPES", help="argument types of a @fuseflow.jit FUNC, e.g. "
                    "'f32[?,784] f32[784,10]' (? is any size)")
    ir.set_defaults(run=cmd_ir)
    _add_bench(sub)
    cache = sub.add_parser("cache", help="show or clear the on-disk kernel cache")
    cache.add_argument("action", choices=("info", "clear"), help="info: where, whether on, entries, size; "
                       "clear: delete the entries")
    cache.set_defaults(run=cmd_cache)
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
