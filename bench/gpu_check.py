"""GPU check: the CUDA tests on the real GPU, then the GPU benchmarks, in one run.

    python -m fuseflow.bench.gpu_check [--quick] [--skip-tests] [--json FILE]

1. Runs ``tests/cuda`` with ``FUSEFLOW_CUDA_TESTS=1`` and *without* ``NUMBA_ENABLE_CUDASIM``, so the
   kernels CI checks under the simulator run on the GPU itself.
2. Benchmarks (float32, device-resident inputs, ``cuda.synchronize()`` around each timing): a
   device-to-device copy (the bandwidth reference, measured in the same run, into an array allocated
   once, as the kernels' results are), GELU and
   ``a*b + c*d - exp(e)`` on 2^26 elements, row softmax of 8192x8192 (each one fused kernel), and
   an MLP 784-512-10 SGD train step at batch 128 whose data and weights live on the GPU (no feed,
   no fetch: the step asserts that no host transfer happens). Memory-bound results are reported as
   GB/s (bytes the kernel must move) and as a share of the copy bandwidth (the target for fused
   elementwise work: >= 80 %), with the time ratio against CuPy and PyTorch on the same work when
   they are installed.

``--quick`` uses tiny sizes; the test suite runs it under the simulator to keep the workloads working.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from fuseflow.bench.common import optional

GELU_C = 0.7978845608


def _sizes(quick: bool) -> dict:
    if quick:
        return {"n": 1 << 10, "rows": 8, "cols": 16, "mlp": (16, 8, 4), "batch": 4, "repeats": 1}
    return {"n": 1 << 26, "rows": 8192, "cols": 8192, "mlp": (784, 512, 10), "batch": 128, "repeats": 10}


def _sync():
    from fuseflow.codegen.cuda_device import cuda

    cuda().synchronize()


def _timed(fn, repeats: int, sync=_sync) -> float:
    """Median seconds of `fn()` after one warm-up call, synchronising the device around each call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# ----------------------------------------------------------------------------- fuseflow workloads


def _fused_gpu_kernel(arg_shapes, body):
    """The one GPU kernel of the region `body` builds over float32 arguments of `arg_shapes`."""
    from fuseflow.ir import dtypes as dt
    from fuseflow.ir.builder import Builder
    from fuseflow.ir.core import Module
    from fuseflow.ir.types import TensorType
    from fuseflow.runtime.compile import optimize_for_device
    from fuseflow.runtime.devices import kernel_for

    b = Builder([TensorType(dt.float32, s) for s in arg_shapes])
    module = Module([b.finish([body(b, *b.args)])])
    placed = optimize_for_device(module, "/gpu:0", soft=False)
    (fused,) = [op for op in placed.main.ops if op.name == "fused"]
    return kernel_for(fused)


def _c(b, value):
    return b.constant(np.float32(value))


def gelu_ir(b, x):
    cube = b.op("mul", x, b.op("mul", x, x))
    inner = b.op("mul", _c(b, GELU_C), b.op("add", x, b.op("mul", _c(b, 0.044715), cube)))
    return b.op("mul", b.op("mul", _c(b, 0.5), x), b.op("add", _c(b, 1.0), b.op("tanh", inner)))


def mix_ir(b, a, bb, c, d, e):
    return b.op("sub", b.op("add", b.op("mul", a, bb), b.op("mul", c, d)), b.op("exp", e))


def softmax_ir(b, x):
    e = b.op("exp", b.op("sub", x, b.op("reduce_max", x, axes=(1,), keepdims=True)))
    return b.op("div", e, b.op("reduce_sum", e, axes=(1,), keepdims=True))


def _normalise(e):
    return e / e.sum(1, keepdims=True)


def _peers(name: str, host_arrays: list, repeats: int) -> dict:
    """Seconds of the same work in CuPy and PyTorch (those installed), on device-resident copies."""
    out = {}
    cp, torch = optional("cupy"), optional("torch")
    if cp is not None:
        xs = [cp.asarray(a) for a in host_arrays]
        fn = {"gelu": lambda x: 0.5 * x * (1 + cp.tanh(GELU_C * (x + 0.044715 * x ** 3))),
              "a*b+c*d-exp(e)": lambda a, b, c, d, e: a * b + c * d - cp.exp(e),
              "softmax": lambda x: _normalise(cp.exp(x - x.max(1, keepdims=True))),
              "copy": lambda x: x.copy()}[name]
        out["cupy"] = _timed(lambda: fn(*xs), repeats, cp.cuda.Device().synchronize)
    if torch is not None and torch.cuda.is_available():
        xs = [torch.from_numpy(a).cuda() for a in host_arrays]
        fn = {"gelu": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
              "a*b+c*d-exp(e)": lambda a, b, c, d, e: a * b + c * d - torch.exp(e),
              "softmax": lambda x: torch.softmax(x, 1), "copy": lambda x: x.clone()}[name]
        out["torch"] = _timed(lambda: fn(*xs), repeats, torch.cuda.synchronize)
    return out


def memory_bound_rows(sizes: dict) -> list[dict]:
    """Copy, GELU, the five-array mix and row softmax: seconds, GB/s, share of copy bandwidth, peers."""
    from fuseflow.codegen import cuda_device as cd

    rng = np.random.default_rng(0)
    n, shape = sizes["n"], (sizes["rows"], sizes["cols"])
    vec = [rng.standard_normal(n).astype(np.float32) for _ in range(5)]
    mat = rng.standard_normal(shape).astype(np.float32)
    work = [  # name, kernel (None: the copy), host inputs, bytes moved
        ("copy", None, vec[:1], 8 * n),
        ("gelu", _fused_gpu_kernel([(n,)], gelu_ir), vec[:1], 8 * n),
        ("a*b+c*d-exp(e)", _fused_gpu_kernel([(n,)] * 5, mix_ir), vec, 24 * n),
        ("softmax", _fused_gpu_kernel([shape], softmax_ir), [mat], 8 * mat.size),
    ]
    rows = []
    for name, kernel, host, nbytes in work:
        dev = [cd.cuda().to_device(a) for a in host]
        if kernel is None:
            out = cd.device_empty(host[0].shape, host[0].dtype)
            call = (lambda d=dev, o=out: o.copy_to_device(d[0]))
        else:  # results into arrays allocated once: the kernel's bandwidth, not the allocator's latency
            outs = kernel(*dev)
            call = (lambda k=kernel, d=dev, o=outs: k(*d, out=o))
        seconds = _timed(call, sizes["repeats"])
        rows.append({"name": name, "seconds": seconds, "gbps": nbytes / seconds / 1e9,
                     **{f"{peer}_ratio": t / seconds for peer, t in _peers(name, host, sizes["repeats"]).items()}})
    for row in rows:
        row["of_copy"] = row["gbps"] / rows[0]["gbps"]
    return rows


def mlp_row(sizes: dict) -> dict:
    """One SGD step of a 784-512-10 ReLU MLP, data and weights on the GPU: seconds per step."""
    import fuseflow as tf
    from fuseflow.runtime import devices

    n_in, n_hidden, n_out = sizes["mlp"]
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.Variable(rng.standard_normal((sizes["batch"], n_in)).astype(np.float32), name="x")
        y = tf.Variable(np.eye(n_out, dtype=np.float32)[rng.integers(0, n_out, sizes["batch"])], name="y")
        w1 = tf.Variable(tf.truncated_normal([n_in, n_hidden], stddev=0.05))
        w2 = tf.Variable(tf.truncated_normal([n_hidden, n_out], stddev=0.05))
        b1, b2 = tf.Variable(tf.zeros([n_hidden])), tf.Variable(tf.zeros([n_out]))
        logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as sess:
        sess.run(init)
        sess.run(train)
        before = dict(devices.TRANSFERS)
        seconds = _timed(lambda: sess.run(train), sizes["repeats"])
        host_copies = sum(devices.TRANSFERS.values()) - sum(before.values())
        final_loss = float(sess.run(loss))
    assert host_copies == 0, f"the MLP step copied {host_copies} values between host and device"
    return {"name": "mlp step", "seconds": seconds, "host_copies": host_copies, "loss": final_loss}


def run_benchmarks(quick: bool = False) -> list[dict]:
    """Every benchmark row (see the module docstring)."""
    sizes = _sizes(quick)
    return memory_bound_rows(sizes) + [mlp_row(sizes)]


def run_gpu_tests() -> int:
    """``pytest tests/cuda`` on the real GPU (the simulator switched off); its exit code."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tests = os.path.join(root, "tests", "cuda")
    if not os.path.isdir(tests):
        print(f"gpu_check: no tests at {tests} (an installed copy without the source tree): skipped")
        return 0
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["FUSEFLOW_CUDA_TESTS"] = "1"
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests], env=env, cwd=root)


def print_table(rows: list[dict]) -> None:
    print(f"{'workload':<16} {'ms':>9} {'GB/s':>8} {'of copy':>8} {'cupy x':>7} {'torch x':>8}  check")
    for r in rows:
        gbps = f"{r['gbps']:8.1f}" if "gbps" in r else f"{'':>8}"
        share = f"{100 * r['of_copy']:7.0f}%" if "of_copy" in r else f"{'':>8}"
        peers = "".join(f" {r[k]:7.2f}" if k in r else f" {'-':>7}" for k in ("cupy_ratio", "torch_ratio"))
        check = ""
        if r["name"] in ("gelu", "a*b+c*d-exp(e)"):
            check = "ok (>= 80% of copy)" if r["of_copy"] >= 0.8 else "BELOW 80% of copy"
        if r["name"] == "mlp step":
            check = f"{r['host_copies']} host copies per step"
        print(f"{r['name']:<16} {1e3 * r['seconds']:9.3f} {gbps} {share}{peers}  {check}")
    print("(x: the peer's time over fuseflow's; above 1 means fuseflow is faster)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuseflow.bench.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, e.g. under the simulator)")
    parser.add_argument("--skip-tests", action="store_true", help="only the benchmarks")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    from fuseflow.codegen.cuda_device import simulated
    from fuseflow.runtime.devices import gpu_count

    if simulated():
        sys.setswitchinterval(5e-5)  # see tests/cuda/conftest.py: the simulator's threads poll each other
    if not gpu_count():
        print("gpu_check: numba.cuda finds no GPU here; nothing to check", file=sys.stderr)
        return 2
    status = 0 if args.skip_tests else run_gpu_tests()
    rows = run_benchmarks(args.quick)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())
