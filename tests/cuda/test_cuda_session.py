"""Sessions with a GPU present: default and explicit placement, copies in the IR, variables resident on
the GPU between runs, fetches as numpy arrays, TF's log_device_placement, an MLP training step equal to
the same graph placed on the CPU, ``fuseflow ir`` and the GPU check script's workloads.
"""

from __future__ import annotations

import re

import numpy as np

import fuseflow as tf
from fuseflow.cli import main as cli_main
from fuseflow.codegen import cuda_device
from fuseflow.runtime import devices

GPU = "/device:GPU:0"


def mlp(device=None, seed=0):
    """A 5-7-3 ReLU perceptron with softmax cross-entropy, one SGD step op; on `device` when given."""
    graph = tf.Graph()
    with graph.as_default(), tf.device(device):
        tf.set_random_seed(seed)
        x = tf.placeholder(tf.float32, [9, 5], name="x")
        y = tf.placeholder(tf.float32, [9, 3], name="y")
        w1 = tf.Variable(tf.truncated_normal([5, 7], stddev=0.5), name="W1")
        b1 = tf.Variable(tf.zeros([7]), name="b1")
        w2 = tf.Variable(tf.truncated_normal([7, 3], stddev=0.5), name="W2")
        b2 = tf.Variable(tf.zeros([3]), name="b2")
        logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits))
        train = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
        init = tf.global_variables_initializer()
    return graph, {"x": x, "y": y, "loss": loss, "train": train, "init": init, "variables": [w1, b1, w2, b2]}


def batch(step):
    rng = np.random.default_rng(step)
    return rng.standard_normal((9, 5)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 9)]


def compiled_text(sess) -> str:
    return "\n".join(str(c.module) for c in sess._cache.values())


def test_mlp_training_step_on_the_gpu_matches_the_cpu():
    runs = []
    for device in (None, "/cpu:0"):
        graph, m = mlp(device)
        sess = tf.Session(graph=graph)
        sess.run(m["init"])
        trace = []
        for step in range(3):
            xs, ys = batch(step)
            _, loss = sess.run([m["train"], m["loss"]], {m["x"]: xs, m["y"]: ys})
            trace.append([loss] + sess.run(m["variables"]))
        runs.append((trace, compiled_text(sess)))
    (gpu, gpu_ir), (cpu, cpu_ir) = runs
    matmuls = re.findall(r"= matmul .*", gpu_ir)
    assert len(matmuls) == 5 and all(f'on "{GPU}"' in line for line in matmuls)
    assert " on " not in cpu_ir and "copy_to_device" not in cpu_ir  # all on the host: no devices, no copies
    for step, (g, c) in enumerate(zip(gpu, cpu)):
        for a, b in zip(g, c):
            assert isinstance(a, (np.ndarray, np.floating))
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6, err_msg=f"step {step}")


def test_variables_stay_on_the_gpu_and_a_step_copies_only_feeds_and_fetches():
    graph, m = mlp()
    with tf.Session(graph=graph) as sess:
        sess.run(m["init"])
        xs, ys = batch(0)
        sess.run([m["train"], m["loss"]], {m["x"]: xs, m["y"]: ys})  # compiles
        before = dict(devices.TRANSFERS)
        for step in range(2):
            sess.run([m["train"], m["loss"]], {m["x"]: xs, m["y"]: ys})
        stored = [sess._store[v] for v in m["variables"]]
        assert all(cuda_device.is_device_array(v) for v in stored)
        # per step: x and y up, the loss down; the weights never leave the GPU
        assert devices.TRANSFERS["to_device"] - before["to_device"] == 2 * 2
        assert devices.TRANSFERS["to_host"] - before["to_host"] == 2 * 1
        ir = compiled_text(sess)
        main = ir[ir.rindex("func @main"):]
        assert main.count("copy_to_device") == 3
        step = list(sess._cache.values())[-1].executable
        assert GPU in step.plan.devices  # GPU intermediates live in device buffers planned once
        w1 = sess.run(m["variables"][0])
        assert isinstance(w1, np.ndarray) and w1.shape == (5, 7)


def test_log_device_placement_prints_each_op_and_its_device(capsys):
    graph, m = mlp()
    with tf.Session(graph=graph, config=tf.ConfigProto(log_device_placement=True)) as sess:
        sess.run(m["init"])
        xs, ys = batch(0)
        sess.run(m["loss"], {m["x"]: xs, m["y"]: ys})
    err = capsys.readouterr().err
    assert "MatMul: (matmul): /job:localhost/replica:0/task:0/device:GPU:0" in err
    assert "TruncatedNormal: (random_truncated_normal): /job:localhost/replica:0/task:0/device:CPU:0" in err
    assert "(copy_to_device): /job:localhost/replica:0/task:0/device:GPU:0" in err


def test_explicit_scopes_full_names_and_cross_device_copies():
    a = tf.placeholder(tf.float32, [4, 3], name="a")
    with tf.device("/job:localhost/replica:0/task:0/device:GPU:0"):
        b = tf.exp(a, name="on_gpu")
    with tf.device("/cpu:0"):
        c = tf.reduce_sum(b * 2.0, axis=1, name="on_cpu")
    d = tf.sqrt(c + 1.0, name="default")
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    with tf.Session(config=tf.ConfigProto(allow_soft_placement=False)) as sess:
        got = sess.run(d, {a: x})
        ir = compiled_text(sess)
    np.testing.assert_allclose(got, np.sqrt((np.exp(x) * 2).sum(1) + 1), rtol=1e-6)
    assert isinstance(got, np.ndarray)
    assert f'exp %1 : f32[4,3] on "{GPU}"' in ir
    assert 'copy_to_device %2 {device="/device:CPU:0"}' in ir  # exp's result goes to the host for the sum
    # exp alone (GPU), mul+sum (CPU), add+sqrt (GPU by default): kernels never span devices
    assert ir.count(" = fused ") == 2 and ir.count(" = copy_to_device ") == 4


def test_fuseflow_ir_shows_placement_and_copies(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(
        "import fuseflow as tf\n"
        "def model():\n"
        "    x = tf.placeholder(tf.float32, [4, 8], name='x')\n"
        "    with tf.device('/cpu:0'):\n"
        "        h = tf.nn.relu(x)\n"
        "    return tf.nn.softmax(h * 2.0)\n")
    assert cli_main(["ir", f"{path}:model"]) == 0
    out = capsys.readouterr().out
    assert f'%3 = copy_to_device %2 {{device="{GPU}"}} : f32[4,8] on "{GPU}"' in out
    assert f'%4 = fused %3 : f32[4,8] on "{GPU}"' in out  # the softmax, one kernel on the GPU
    assert '%2 = maximum %0, %1 : f32[4,8] on "/device:CPU:0"' in out  # the relu where it was asked
    assert '%13 = copy_to_device %4 {device="/device:CPU:0"}' in out
    assert cli_main(["ir", f"{path}:model", "--before", "place"]) == 0
    assert 'on "/device:CPU:0"' in capsys.readouterr().out  # the request, before placement


def test_gpu_check_workloads_run_at_tiny_sizes(capsys):
    from fuseflow.bench import gpu_check

    rows = gpu_check.run_benchmarks(quick=True)
    assert {r["name"] for r in rows} >= {"copy", "gelu", "a*b+c*d-exp(e)", "softmax", "mlp step"}
    assert all(r["seconds"] > 0 for r in rows)


def test_jit_with_device_gpu_runs_there():
    def gelu(x):
        return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))

    x = np.linspace(-3, 3, 37, dtype=np.float32)
    on_gpu = tf.jit(gelu, device="gpu")
    on_gpu(x)
    before = dict(devices.TRANSFERS)
    got = on_gpu(x)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, gelu(x), rtol=1e-5, atol=1e-6)
    assert devices.TRANSFERS["to_device"] - before["to_device"] == 1  # x up, the result down
    assert devices.TRANSFERS["to_host"] - before["to_host"] == 1
    assert f'on "{GPU}"' in on_gpu.lower(x)
    on_cpu = tf.jit(gelu, device="cpu")
    before = dict(devices.TRANSFERS)
    np.testing.assert_allclose(on_cpu(x), gelu(x), rtol=1e-5, atol=1e-6)
    assert devices.TRANSFERS == before
