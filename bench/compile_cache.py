"""Benchmark: the first `run` of a graph in a fresh process, with a cold and with a warm kernel cache.

    python -m fuseflow.bench.compile_cache [--repeats 3] [--graph gelu|mlp]

For each graph and repeat: an empty cache directory, one fresh process (cold: every kernel is
compiled and written), then a second fresh process on the same directory (warm: every kernel is
loaded). Each process times, from before building the graph to after its first ``run``, and
reports its ``import fuseflow`` time and `KERNEL_STATS`. Medians over the repeats are printed.

- gelu: ``0.5*x*(1+tanh(0.7978845608*(x+0.044715*x**3)))`` on a float32 placeholder, fed [1024].
- mlp: the MLP 784-512-10 train step of `fuseflow.bench.training` (batch 128).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

GRAPHS = ("gelu", "mlp")


def _gelu_first_run():
    import numpy as np

    import fuseflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None])
        y = 0.5 * x * (1 + tf.tanh(0.7978845608 * (x + 0.044715 * x**3)))
        sess = tf.Session(graph=graph)
    return sess.run(y, {x: np.linspace(-3, 3, 1024, dtype=np.float32)})


def _mlp_first_run():
    import numpy as np

    from fuseflow.bench.training import mlp_fuseflow

    rng = np.random.default_rng(0)
    x = rng.random((128, 784), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
    params = (rng.standard_normal((784, 512), dtype=np.float32) * 0.05, np.zeros(512, np.float32),
              rng.standard_normal((512, 10), dtype=np.float32) * 0.05, np.zeros(10, np.float32))
    return mlp_fuseflow(x, y, *params, 0.1)()


def child(graph: str) -> dict:
    """Runs in the fresh process: import time, first-run time and kernel counts, as a dict."""
    start = time.perf_counter()
    import fuseflow  # noqa: F401
    from fuseflow.codegen.source import KERNEL_STATS

    imported = time.perf_counter()
    {"gelu": _gelu_first_run, "mlp": _mlp_first_run}[graph]()
    done = time.perf_counter()
    return {"import_s": imported - start, "first_run_s": done - imported, "stats": dict(KERNEL_STATS)}


def _spawn(graph: str, cache_dir: str) -> dict:
    env = dict(os.environ, FUSEFLOW_CACHE_DIR=cache_dir)
    # Run as a file, not ``-m fuseflow.bench...``, which would import fuseflow before the clock starts.
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", graph],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--graph", choices=GRAPHS, action="append")
    parser.add_argument("--child", choices=GRAPHS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return {}
    report = {}
    for graph in args.graph or GRAPHS:
        runs = {"cold": [], "warm": []}
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="fuseflow-bench-cache-") as cache_dir:
                runs["cold"].append(_spawn(graph, cache_dir))
                runs["warm"].append(_spawn(graph, cache_dir))
        report[graph] = {}
        for kind, results in runs.items():
            times = [r["first_run_s"] for r in results]
            median = {"first_run_s": statistics.median(times),
                      "import_s": statistics.median(r["import_s"] for r in results), "stats": results[-1]["stats"]}
            report[graph][kind] = median
            print(f"{graph} {kind}: first run {median['first_run_s'] * 1e3:.0f} ms (median of "
                  f"{', '.join(f'{t * 1e3:.0f}' for t in times)}), import fuseflow {median['import_s'] * 1e3:.0f} ms, "
                  f"kernels {median['stats']}")
    return report


if __name__ == "__main__":
    main()
