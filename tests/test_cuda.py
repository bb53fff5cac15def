"""Devices: the CUDA test suite under numba's simulator, and placement on a machine without a GPU.

`test_cuda_suite_runs_under_the_simulator` runs ``tests/cuda`` in a process of its own with
``NUMBA_ENABLE_CUDASIM=1`` (see ``tests/cuda/conftest.py`` for why not in this one) and fails unless
every test there passed, none skipped. `test_generated_kernels_compile_to_ptx_for_a_real_gpu` compiles
every kernel the backend generates for sm_90 with the CUDA toolkit's NVVM when it is installed (the
simulator cannot tell whether numba's CUDA target accepts them). The other tests prove, in this process (no GPU here, or
none that placement may see): TF's hard and soft placement and its error, log_device_placement,
device requests in the IR and its round trip, the place pass's copies and constants, fusion never
crossing devices, and that ``import fuseflow`` does not import numba.cuda.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from irtest import check_ir

import fuseflow as tf
from fuseflow.cli import main as cli_main
from fuseflow.ir import dtypes as dt
from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Module
from fuseflow.ir.errors import InvalidArgumentError
from fuseflow.ir.types import TensorType
from fuseflow.passes.fuse import fuse
from fuseflow.passes.place import Placement, place
from fuseflow.runtime import devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU = "/device:GPU:0"


def test_cuda_suite_runs_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", FUSEFLOW_CUDA_TESTS="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           os.path.join(ROOT, "tests", "cuda")], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = out.strip().splitlines()[-1]
    assert re.match(r"\d+ passed in ", summary) and int(summary.split()[0]) >= 35, summary  # no skip, no fail


def test_generated_kernels_compile_to_ptx_for_a_real_gpu():
    # The simulator runs kernels as Python; this types and lowers each one for sm_90 (see the script).
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "cuda_ptx_check.py")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode == 3:
        pytest.skip("no CUDA toolkit (NVVM) on this machine: kernels not compiled to PTX")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^\d+ kernels compiled to PTX for sm_90, 0 failed$", proc.stdout, re.MULTILINE), proc.stdout


@pytest.fixture
def no_gpu(monkeypatch):
    """Placement sees no GPU, whatever this machine has."""
    monkeypatch.setattr(devices, "gpu_count", lambda: 0)


def gpu_graph():
    x = tf.placeholder(tf.float32, [2, 3], name="x")
    with tf.device("/gpu:0"):
        y = tf.exp(x, name="on_gpu")  # line noted below
    return x, y, gpu_graph.__code__.co_firstlineno + 3


def test_hard_gpu_request_without_a_gpu_names_op_line_and_device(no_gpu):
    x, y, line = gpu_graph()
    with tf.Session() as sess, pytest.raises(InvalidArgumentError) as info:  # TF's default: soft placement off
        sess.run(y, {x: np.ones((2, 3), np.float32)})
    message = str(info.value)
    assert "'on_gpu'" in message and f"test_cuda.py:{line}" in message
    assert "/job:localhost/replica:0/task:0/device:GPU:0" in message and "allow_soft_placement" in message


def test_soft_placement_runs_a_gpu_request_on_the_cpu(no_gpu, capsys):
    x, y, _ = gpu_graph()
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True, log_device_placement=True)
    with tf.Session(config=config) as sess:
        got = sess.run(y, {x: np.ones((2, 3), np.float32)})
        (compiled,) = sess._cache.values()
    np.testing.assert_allclose(got, np.full((2, 3), np.e, np.float32), rtol=1e-6)
    assert " on " not in str(compiled.module)  # all on the host: the IR CPU programs always had
    assert "on_gpu: (exp): /job:localhost/replica:0/task:0/device:CPU:0" in capsys.readouterr().err


def test_jit_device_gpu_without_a_gpu_names_the_op_and_device(no_gpu):
    f = tf.jit(lambda x: np.exp(x) * 2.0, device="gpu")
    with pytest.raises(InvalidArgumentError, match=r"/job:localhost/replica:0/task:0/device:GPU:0") as info:
        f(np.ones(3, np.float32))
    assert "test_cuda.py" in str(info.value)
    with pytest.raises(ValueError, match="bad device name"):
        tf.jit(lambda x: x, device="/tpu:0")


def test_plain_config_objects_are_accepted(no_gpu):
    class Config:
        allow_soft_placement = True

    x, y, _ = gpu_graph()
    with tf.Session(config=Config()) as sess:
        assert sess.run(y, {x: np.zeros((2, 3), np.float32)}).tolist() == [[1.0] * 3] * 2


def test_fuseflow_ir_shows_the_request_before_placement(tmp_path, capsys, no_gpu):
    path = tmp_path / "model.py"
    path.write_text("import fuseflow as tf\ndef model():\n    x = tf.placeholder(tf.float32, [2, 3])\n"
                    "    with tf.device('/gpu:0'):\n        return tf.exp(x) * 2.0\n")
    assert cli_main(["ir", f"{path}:model", "--before", "place"]) == 0
    assert f'exp %0 : f32[2,3] on "{GPU}"' in capsys.readouterr().out
    assert cli_main(["ir", f"{path}:model"]) == 0  # the CLI places softly: on the CPU here
    out = capsys.readouterr().out
    assert " on " not in out and " = fused " in out


# ----------------------------------------------------------------------------- the place pass on IR


def f32(*shape):
    return TensorType(dt.float32, shape)


def module_of(arg_types, body) -> Module:
    b = Builder(arg_types)
    out = body(b, *b.args)
    return Module([b.finish(list(out) if isinstance(out, tuple) else [out])])


def assert_placed(module: Module) -> None:
    """The place pass's guarantee: every op has a device, and reads only values on it (copies excepted)."""
    fn = module.main
    for op in fn.ops[:-1]:
        assert op.device in ("/device:CPU:0", GPU), op
        for v in op.operands:
            owner = v.owner
            if op.name != "copy_to_device" and hasattr(owner, "device"):
                assert owner.device == op.device, f"{op} reads {owner} across devices"


ONE_GPU = Placement(gpus=1, has_gpu_kernel=lambda op: op.name not in ("sin", "sub"))  # a pretend GPU


def test_copies_are_explicit_one_per_value_and_device_and_round_trip():
    def body(b, x):
        e = b.op("exp", x)
        s = b.op("sin", e)  # no GPU kernel: the host, so e crosses over once for both users
        return b.op("add", b.op("cos", s), b.op("mul", s, e)), b.op("neg", b.op("mul", e, e))

    placed = check_ir(place(module_of([f32(3, 4)], body), ONE_GPU))
    assert_placed(placed)
    text = str(placed)
    assert text.count("copy_to_device") == 5  # x up, e down, s up, two results down
    assert 'sin %3 : f32[3,4] on "/device:CPU:0"' in text and f'exp %1 : f32[3,4] on "{GPU}"' in text
    fused = check_ir(fuse(placed))
    assert_placed(fused)
    devices_of_fused = {op.device for op in fused.main.ops if op.name == "fused"}
    assert devices_of_fused == {GPU}  # the GPU chains fused; the host's sin stays alone


def test_constants_are_made_on_each_device_that_reads_them():
    def body(b, x):
        two = b.constant(np.float32(2.0))
        return b.op("mul", b.op("sub", x, two), two)  # sub on the host, mul on the GPU

    placed = place(module_of([f32(3)], body), ONE_GPU)
    assert_placed(placed)
    text = str(placed)
    assert text.count(" = constant ") == 2 and text.count(" = copy_to_device ") == 2  # sub's result up, mul's down
    assert 'constant {value=dense<f32[]>2.0} : f32[] on "/device:CPU:0"' in text
    assert f'constant {{value=dense<f32[]>2.0}} : f32[] on "{GPU}"' in text


def test_host_only_placement_leaves_the_function_as_it_was():
    module = module_of([f32(3)], lambda b, x: b.op("exp", b.op("mul", x, x)))
    assert place(module, Placement()) is not None and str(place(module, Placement())) == str(module)


def test_scalar_bookkeeping_on_host_values_stays_on_the_host():
    def body(b, counter, x):
        return b.op("add", counter, b.constant(np.int64(1))), b.op("exp", x)

    text = str(place(module_of([TensorType(dt.int64, ()), f32(2)], body), ONE_GPU))
    assert 'add %0, %2 : i64[] on "/device:CPU:0"' in text and f'exp %4 : f32[2] on "{GPU}"' in text


def test_gradient_of_a_copy_is_the_copy_back():
    from fuseflow.passes.autodiff import autodiff

    def body(b, x):
        y = b.op("reduce_sum", b.op("copy_to_device", b.op("exp", x), device=GPU), axes=(0,), keepdims=False)
        return b.op("gradients", y, x, num_ys=1, num_xs=1)

    text = str(check_ir(autodiff(module_of([f32(3)], body))))
    assert 'copy_to_device %1 {device="/device:GPU:0"}' in text
    assert 'copy_to_device' in text.split("reduce_sum")[1]  # the cotangent goes back to the host


def test_printed_devices_round_trip_and_bad_ones_are_rejected():
    from fuseflow.ir.parser import parse_module
    from fuseflow.ir.verifier import VerifyError, verify

    text = 'func @main(%0: f32[2]) -> (f32[2]) {\n  %1 = exp %0 : f32[2] on "/device:GPU:0" loc("e")\n  return %1\n}\n'
    assert str(check_ir(parse_module(text))) == text
    with pytest.raises(VerifyError, match="bad device"):
        verify(parse_module(text.replace("/device:GPU:0", "/tpu:0")))


def test_import_fuseflow_does_not_import_numba_cuda():
    code = "import sys, fuseflow; print('numba.cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
