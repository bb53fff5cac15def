"""The `fuseflow ir` command: stages, formats, explanations and one-line errors."""

import textwrap

import pytest

from fuseflow.cli import main

MODEL = textwrap.dedent('''
    import fuseflow as tf

    def model():
        x = tf.placeholder(tf.float32, shape=[None, 64], name="x")
        W = tf.Variable(tf.ones([64, 10]), name="W")
        b = tf.Variable(tf.zeros([10]), name="b")
        return tf.nn.softmax(tf.nn.relu(tf.matmul(x, W) + b))
''')


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    return str(path)


def test_default_pipeline_fuses_epilogue_and_softmax(model_file, capsys):
    assert main(["ir", f"{model_file}:model"]) == 0
    out = capsys.readouterr().out
    assert out.count(" = matmul ") == 1 and out.count(" = fused ") == 1
    assert "reduce_max" in out and "reduce_sum" in out and "yield" in out


def test_before_after_and_all(model_file, capsys):
    assert main(["ir", f"{model_file}:model", "--before", "fuse"]) == 0
    before = capsys.readouterr().out
    assert "after gemm" in before and " = fused " not in before
    assert main(["ir", f"{model_file}:model", "--after", "fuse"]) == 0
    assert " = fused " in capsys.readouterr().out
    assert main(["ir", f"{model_file}:model", "--all"]) == 0
    out = capsys.readouterr().out
    for stage in ("input", "after simplify", "after fold", "after cse", "after dce", "after place", "after gemm", "after fuse"):
        assert f"// ----- {stage}\n" in out


def test_dot_output_has_a_cluster_per_kernel(model_file, capsys):
    assert main(["ir", f"{model_file}:model", "--format", "dot"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph fuseflow {") and out.count("subgraph cluster_") == 1


def test_explain_names_the_matmul_boundary(model_file, capsys):
    assert main(["ir", f"{model_file}:model", "--explain"]) == 0
    assert "# not fused: matmul 'MatMul'" in capsys.readouterr().out


def test_ffir_file_is_parsed_optimised_and_printed(tmp_path, capsys):
    path = tmp_path / "f.ffir"
    path.write_text(textwrap.dedent('''
        func @main(%0: f32[4]) -> (f32[4]) {
          %1 = constant {value=dense<f32[]>1.0} : f32[]
          %2 = mul %0, %1 : f32[4]
          %3 = exp %2 : f32[4]
          %4 = neg %3 : f32[4]
          return %4
        }
    '''))
    assert main(["ir", str(path)]) == 0
    out = capsys.readouterr().out
    assert " mul " not in out and " = fused " in out


@pytest.mark.parametrize("args, message", [
    (["ir", "/nonexistent/model.py:model"], "no such file"),
    (["ir", "/nonexistent/f.ffir"], "no such file"),
    (["ir", "model.py"], "expected FILE.py:FUNC"),
])
def test_bad_targets_exit_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_function_and_unknown_pass(model_file, capsys):
    assert main(["ir", f"{model_file}:nope"]) == 2
    assert "no function named 'nope'" in capsys.readouterr().err
    assert main(["ir", f"{model_file}:model", "--after", "nope"]) == 2
    assert "not in the pipeline" in capsys.readouterr().err


def test_parse_error_gives_line_and_column(tmp_path, capsys):
    path = tmp_path / "bad.ffir"
    path.write_text("func @main(%0: f32[4]) -> (f32[4]) {\n  %1 = exp %0 : f32[4\n  return %1\n}\n")
    assert main(["ir", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 3, column 3: expected" in err and err.count("\n") == 1


JITTED = textwrap.dedent('''
    import numpy as np
    import fuseflow

    @fuseflow.jit
    def layer(x, W, b):
        return np.tanh(x @ W + b)
''')


def test_jit_function_with_shapes(tmp_path, capsys):
    path = tmp_path / "jitted.py"
    path.write_text(JITTED)
    assert main(["ir", f"{path}:layer", "--shapes", "f32[?,784], f32[784,10] f32[10]"]) == 0
    out = capsys.readouterr().out
    assert "func @main(%0: f32[?,784], %1: f32[784,10], %2: f32[10]) -> (f32[?,10])" in out
    assert out.count(" = matmul ") == 1 and out.count(" = fused ") == 1


@pytest.mark.parametrize("shapes, message", [(None, "give its argument types with --shapes"),
                                             ("f32[?,78", "--shapes: 'f32[?,78': line 1, column 9")])
def test_jit_function_shape_errors(tmp_path, capsys, shapes, message):
    path = tmp_path / "jitted.py"
    path.write_text(JITTED)
    assert main(["ir", f"{path}:layer"] + (["--shapes", shapes] if shapes else [])) == 2
    assert message in capsys.readouterr().err
