"""One native function for a small executable: every step called from compiled code.

Each step of an executable costs a Python call into a kernel (argument checks and unboxing,
0.3 to 1 us), and for a program whose kernels take nanoseconds (the plane-fitting step of the
TensorFlow introduction: six steps over 100 elements) that is the whole run. `compile_driver`
generates one numba function that allocates the step results and calls each compiled kernel
directly (numba calls a compiled dispatcher natively), so a run is a single call.

A step takes part through its kernel's ``native(args, results, env, tag)``, which returns source
lines (or None when the kernel cannot run natively: split across threads, float16 views,
movement kernels). Small matrix products become loop nests in the driver itself.
"""

from __future__ import annotations

import numba
import numpy as np

from fuseflow.codegen import helpers, mathlib


def empty(name: str, shape, dtype) -> str:
    """``name = np.empty(shape, dtype)`` as driver source."""
    return f"{name} = np.empty({tuple(shape)!r}, np.{np.dtype(dtype).name})"


def compile_driver(steps, arg_types: list, template: list, result_slots: list):
    """A compiled driver of `steps` ``(kernel, input slots, output slots)``; None when a step cannot join.

    `arg_types` are the numpy (dtype, ndim) of the arguments, `template` holds the constant slots'
    arrays (None for the others); the driver returns the `result_slots` as a tuple.
    """
    env: dict = {"np": np, "_h": helpers, "_m": mathlib}
    names = {i: f"a{i}" for i in range(len(arg_types))}
    for i, value in enumerate(template):
        if value is not None:
            env[f"c{i}"] = value if value.flags.c_contiguous else value.copy()  # frozen in as a constant
            names[i] = f"c{i}"
    lines = [f"def driver({', '.join(names[i] for i in range(len(arg_types)))}):"]
    for k, (kernel, ins, outs) in enumerate(steps):
        native = getattr(kernel, "native", None)
        results = [f"r{k}_{j}" for j in range(len(outs))]
        body = native([names[i] for i in ins], results, env, f"k{k}") if native else None
        if body is None:
            return None
        lines += ["    " + line for line in body]
        names.update(zip(outs, results))
    lines.append(f"    return ({''.join(names[i] + ', ' for i in result_slots)})")
    exec("\n".join(lines) + "\n", env)  # noqa: S102  (our own generated source)
    dispatcher = numba.njit(error_model="numpy", nogil=True, cache=False)(env["driver"])
    dispatcher.compile(tuple(numba.types.Array(numba.from_dtype(d), n, "C") for d, n in arg_types))
    dispatcher.disable_compile()
    return dispatcher


def matmul_loops(a: str, b: str, out: str, shape, k: int, dtype, ta: bool, tb: bool) -> list[str]:
    """A small 2-D product as driver source: ``out[i, j] = sum_p a[i, p] * b[p, j]`` (transposes swap)."""
    m, n = shape
    ref_a = f"{a}[p, i]" if ta else f"{a}[i, p]"
    ref_b = f"{b}[j, p]" if tb else f"{b}[p, j]"
    kind = f"np.{np.dtype(dtype).name}"
    return [empty(out, shape, dtype),
            f"for i in range({m}):",
            f"    for j in range({n}):",
            f"        acc = {kind}(0)",
            f"        for p in range({k}):",
            f"            acc += {ref_a} * {ref_b}",
            f"        {out}[i, j] = acc"]
