"""Benchmark: fused kernels against numpy and the peers that are installed (numexpr, jax).

    python -m fuseflow.bench.fusion [--quick] [--json FILE]

Workloads (float32): GELU on 2^24 elements, ``a*b + c*d - exp(e)`` on five
arrays of 2^24, row softmax of 4096x4096, and the compile time of the GELU
graph's first ``run`` in a fresh process. The machine's copy bandwidth is
measured first; memory-bound results are reported as GB/s and as a share of it.
Times are the median (and min) of repeats after warm-up, in one process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

from fuseflow.bench.common import copy_bandwidth, measure, optional

GELU_C = 0.7978845608


def gelu_np(x):
    return 0.5 * x * (1 + np.tanh(GELU_C * (x + 0.044715 * x**3)))


def mix_np(a, b, c, d, e):
    return a * b + c * d - np.exp(e)


def softmax_np(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _fuseflow(build, arrays):
    """A session-run callable for the graph `build` makes over float32 placeholders."""
    import fuseflow as tf

    graph = tf.Graph()
    with graph.as_default():
        phs = [tf.placeholder(tf.float32, shape=a.shape) for a in arrays]
        out = build(tf, *phs)
    sess = tf.Session(graph=graph)
    feed = dict(zip(phs, arrays))
    return lambda: sess.run(out, feed)


def _numexpr(expr, names, arrays):
    ne = optional("numexpr")
    if ne is None:
        return None
    env = dict(zip(names, arrays))
    return lambda: ne.evaluate(expr, local_dict=env)


def _jax(fn, arrays):
    jax = optional("jax")
    if jax is None:
        return None
    import jax.numpy as jnp

    jitted = jax.jit(lambda *xs: fn(jnp, *xs))
    dev = [jax.device_put(a) for a in arrays]
    return lambda: jitted(*dev).block_until_ready()


def workloads(quick: bool):
    n = 1 << (18 if quick else 24)
    rows = 512 if quick else 4096
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    five = [rng.standard_normal(n, dtype=np.float32) for _ in range(5)]
    m = rng.standard_normal((rows, rows), dtype=np.float32)
    gelu = lambda lib, x: 0.5 * x * (1 + lib.tanh(GELU_C * (x + 0.044715 * x**3)))
    mix = lambda lib, a, b, c, d, e: a * b + c * d - lib.exp(e)

    def softmax_jax(jnp, x):
        e = jnp.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return [
        ("gelu", 2 * x.nbytes, {
            "fuseflow": _fuseflow(lambda tf, p: gelu(tf, p), [x]),
            "numpy": lambda: gelu_np(x),
            "numexpr": _numexpr("0.5*x*(1+tanh(0.7978845608*(x+0.044715*x**3)))", ["x"], [x]),
            "jax": _jax(gelu, [x]),
        }),
        ("a*b+c*d-exp(e)", 6 * x.nbytes, {
            "fuseflow": _fuseflow(lambda tf, *ps: mix(tf, *ps), five),
            "numpy": lambda: mix_np(*five),
            "numexpr": _numexpr("a*b+c*d-exp(e)", list("abcde"), five),
            "jax": _jax(mix, five),
        }),
        (f"softmax {rows}x{rows}", 2 * m.nbytes, {
            "fuseflow": _fuseflow(lambda tf, p: tf.nn.softmax(p), [m]),
            "numpy": lambda: softmax_np(m),
            "jax": _jax(softmax_jax, [m]),
        }),
    ]


COMPILE_SCRIPT = """
import time, numpy as np
start = time.perf_counter()
import fuseflow as tf
imported = time.perf_counter()
x = tf.placeholder(tf.float32, shape=[1 << 16])
y = 0.5 * x * (1 + tf.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))
sess = tf.Session()
a = np.ones(1 << 16, np.float32)
t = time.perf_counter(); sess.run(y, {x: a}); first = time.perf_counter() - t
t = time.perf_counter(); sess.run(y, {x: a}); second = time.perf_counter() - t
print(imported - start, first, second)
"""


def compile_times() -> dict:
    """First-run time of the GELU graph in a fresh process (numba and our caches empty)."""
    out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], capture_output=True, text=True, check=True)
    imported, first, second = (float(v) for v in out.stdout.split())
    return {"import_s": imported, "first_run_s": first, "second_run_s": second}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test in seconds")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    bandwidth = copy_bandwidth(1 << (24 if args.quick else 28))
    print(f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s (np.copyto, read + write)")
    report = {"copy_bandwidth_GBps": bandwidth / 1e9, "workloads": {}}
    for name, nbytes, runners in workloads(args.quick):
        times = {peer: measure(fn, repeats=3 if args.quick else 7) for peer, fn in runners.items() if fn}
        ours = times["fuseflow"]["median"]
        row = {"bytes": nbytes, "times": times,
               "GBps": nbytes / ours / 1e9, "bandwidth_share": nbytes / ours / bandwidth,
               "speedup": {peer: t["median"] / ours for peer, t in times.items() if peer != "fuseflow"}}
        report["workloads"][name] = row
        peers = "  ".join(f"{p} {t['median'] * 1e3:.2f} ms ({row['speedup'][p]:.2f}x)"
                          for p, t in times.items() if p != "fuseflow")
        print(f"{name:>20}: fuseflow {ours * 1e3:.2f} ms (min {times['fuseflow']['min'] * 1e3:.2f}), "
              f"{row['GBps']:.1f} GB/s = {100 * row['bandwidth_share']:.0f}% of copy | {peers}")
    report["compile"] = compile_times()
    c = report["compile"]
    print(f"GELU graph, fresh process: import {c['import_s'] * 1e3:.0f} ms, first run (lower + compile) "
          f"{c['first_run_s'] * 1e3:.0f} ms, second run {c['second_run_s'] * 1e3:.2f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
