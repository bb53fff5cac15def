"""The README's examples run as written."""

import os
import re

from fuseflow.cli import main

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _blocks(lang: str) -> list[str]:
    with open(README) as f:
        return re.findall(rf"```{lang}\n(.*?)```", f.read(), flags=re.DOTALL)


def test_python_examples_run():
    blocks = _blocks("python")
    assert len(blocks) >= 2
    for code in blocks:
        exec(compile(code, README, "exec"), {"__name__": "readme"})  # noqa: S102


def test_cli_example_runs(tmp_path, capsys):
    with open(README) as f:
        model = re.search(r"\$ cat model.py\n(.*?)\n\$ fuseflow", f.read(), flags=re.DOTALL).group(1)
    (tmp_path / "model.py").write_text(model)
    for flags in ([], ["--before", "fuse"], ["--all"], ["--explain"], ["--format", "dot"]):
        assert main(["ir", f"{tmp_path / 'model.py'}:model", *flags]) == 0
    assert " = fused " in capsys.readouterr().out
