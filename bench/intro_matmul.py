"""Benchmark: the introduction's 1024x1024 float32 placeholder matmul.

Reports the first `run` (lower + compile + run, in a fresh process's first
session) and the median time per `run` afterwards, against `np.dot` on the
same float32 array in the same process.

    python -m fuseflow.bench.intro_matmul [--repeats N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fuseflow.bench.common import measure


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)

    import fuseflow as tf

    x = tf.placeholder(tf.float32, shape=(1024, 1024))
    y = tf.matmul(x, x)
    rand_array = np.random.rand(1024, 1024)
    sess = tf.Session()
    start = time.perf_counter()
    sess.run(y, feed_dict={x: rand_array})
    first_s = time.perf_counter() - start

    a32 = rand_array.astype(np.float32)
    run_s = measure(lambda: sess.run(y, feed_dict={x: rand_array}), args.repeats, warmup=3)["median"]
    run32_s = measure(lambda: sess.run(y, feed_dict={x: a32}), args.repeats, warmup=3)["median"]
    dot_s = measure(lambda: np.dot(a32, a32), args.repeats, warmup=3)["median"]
    print(f"first run (lower + compile + run):        {first_s * 1e3:8.1f} ms")
    print(f"  of which lower + optimise + compile:    {sess.compile_seconds * 1e3:8.1f} ms")
    print(f"run, float64 feed (converted to float32): {run_s * 1e3:8.2f} ms  ({run_s / dot_s:.2f}x np.dot)")
    print(f"run, float32 feed:                        {run32_s * 1e3:8.2f} ms  ({run32_s / dot_s:.2f}x np.dot)")
    print(f"np.dot(float32, float32):                 {dot_s * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
