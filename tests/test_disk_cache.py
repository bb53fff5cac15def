"""The on-disk kernel cache: across processes, with bad entries, under races, turned off, and its CLI.

Each process test runs a small program (GELU over 2^16 elements and a row softmax) in fresh Python
processes over a temporary cache directory, and reads back its `KERNEL_STATS`, the cache warnings
it saw and a digest of its results.
"""

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import pytest

from fuseflow.cli import main
from fuseflow.codegen import disk_cache, native
from fuseflow.codegen.disk_cache import MAGIC, SUFFIX, CorruptEntry, read_entry, write_entry

PROGRAM = textwrap.dedent('''
    import hashlib, json, warnings
    import numpy as np
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import fuseflow as tf
        from fuseflow.codegen.disk_cache import FuseflowCacheWarning
        from fuseflow.codegen.source import KERNEL_STATS
        x = tf.placeholder(tf.float32, [None])
        gelu = 0.5 * x * (1 + tf.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))
        m = tf.placeholder(tf.float32, [None, 64])
        top = tf.reduce_max(tf.nn.softmax(m), axis=1)
        feed = {x: np.linspace(-3, 3, 1 << 16, dtype=np.float32),
                m: np.random.default_rng(0).standard_normal((1024, 64), dtype=np.float32)}
        with tf.Session() as sess:
            results = sess.run([gelu, top], feed)
    print(json.dumps({
        "stats": KERNEL_STATS,
        "warnings": [str(w.message) for w in caught if issubclass(w.category, FuseflowCacheWarning)],
        "digest": hashlib.sha256(b"".join(r.tobytes() for r in results)).hexdigest(),
    }))
''')


def _env(cache_dir, **extra):
    env = dict(os.environ, FUSEFLOW_CACHE_DIR=str(cache_dir), **extra)
    if "FUSEFLOW_CACHE" not in extra:
        env.pop("FUSEFLOW_CACHE", None)
    return env


def _start(cache_dir, **extra):
    return subprocess.Popen([sys.executable, "-c", PROGRAM], env=_env(cache_dir, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def _run(cache_dir, **extra) -> dict:
    return _finish(_start(cache_dir, **extra))


def _entries(cache_dir):
    return sorted((cache_dir / "kernels").glob("*" + SUFFIX))


# Both compilers' entries: object code from `codegen.native`, numba's compile results (FUSEFLOW_NATIVE=0).
BACKENDS = {"native": {}, "numba": {"FUSEFLOW_NATIVE": "0"}}


@pytest.fixture(scope="module", params=BACKENDS)
def filled(request, tmp_path_factory):
    """A cache directory filled by one cold process, that process's report, and its environment."""
    cache_dir = tmp_path_factory.mktemp("filled")
    env = BACKENDS[request.param]
    report = _run(cache_dir, **env)
    assert report["stats"]["loaded"] == 0 and report["stats"]["compiled"] >= 2 and not report["warnings"]
    assert all(e.name.startswith("native-") == (request.param == "native") for e in _entries(cache_dir))
    return cache_dir, report, env


@pytest.fixture
def cache_copy(filled, tmp_path):
    """A private copy of the filled cache (a test may damage it)."""
    shutil.copytree(filled[0], tmp_path / "cache")
    return tmp_path / "cache", filled[1], filled[2]


def test_cold_process_writes_one_entry_per_kernel(filled):
    cache_dir, cold, _ = filled
    assert len(_entries(cache_dir)) == cold["stats"]["compiled"]


def test_second_process_compiles_nothing_and_gives_the_same_results(cache_copy):
    cache_dir, cold, env = cache_copy
    warm = _run(cache_dir, **env)
    assert warm["stats"]["compiled"] == 0
    assert warm["stats"]["loaded"] == cold["stats"]["compiled"]
    assert warm["digest"] == cold["digest"] and not warm["warnings"]


def _add_missing_symbol(path, data):
    """A whole entry whose code would link to a symbol no process defines (it must be refused, not linked)."""
    if path.name.startswith("native-"):
        head, obj = native.unpack(read_entry(path))
        write_entry(path, native.pack(head["name"], head["symbols"] + ["fuseflow_test_no_such_symbol"], obj))
        return
    entry = pickle.loads(read_entry(path))
    entry["symbols"].append("fuseflow_test_no_such_symbol")
    write_entry(path, disk_cache.dumps(entry))


DAMAGES = {
    "truncate": lambda path, data: path.write_bytes(data[: len(data) // 2]),
    "garbage": lambda path, data: path.write_bytes(os.urandom(len(data))),
    "empty": lambda path, data: path.write_bytes(b""),
    "flip-a-payload-byte": lambda path, data: path.write_bytes(data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]),
    "whole-but-not-a-kernel": lambda path, data: write_entry(path, b"a valid header over a payload that is no pickle"),
    "links-to-a-missing-symbol": _add_missing_symbol,
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_bad_entry_is_recompiled_with_exactly_one_warning(cache_copy, damage):
    cache_dir, cold, env = cache_copy
    entry = _entries(cache_dir)[0]
    DAMAGES[damage](entry, entry.read_bytes())
    report = _run(cache_dir, **env)
    assert report["stats"]["compiled"] == 1
    assert report["stats"]["loaded"] == cold["stats"]["compiled"] - 1
    assert len(report["warnings"]) == 1 and entry.name in report["warnings"][0]
    assert report["digest"] == cold["digest"]
    assert read_entry(entry) is not None  # written again, whole


def test_two_processes_racing_on_an_empty_cache_both_succeed(tmp_path):
    first, second = _start(tmp_path), _start(tmp_path)
    reports = [_finish(first), _finish(second)]
    assert reports[0]["digest"] == reports[1]["digest"]
    assert not reports[0]["warnings"] and not reports[1]["warnings"]
    after = _run(tmp_path)  # the cache they left is whole: everything loads
    assert after["stats"]["compiled"] == 0 and not after["warnings"]
    assert after["digest"] == reports[0]["digest"]
    assert not [f for f in (tmp_path / "kernels").iterdir() if not f.name.endswith(SUFFIX)]  # no temp files


def test_turned_off_it_writes_nothing(tmp_path):
    report = _run(tmp_path, FUSEFLOW_CACHE="0")
    assert report["stats"]["compiled"] >= 2 and report["stats"]["loaded"] == 0
    assert not (tmp_path / "kernels").exists()


def test_an_unusable_directory_is_reported_once_and_compiling_goes_on(tmp_path):
    in_the_way = tmp_path / "file"
    in_the_way.write_text("not a directory")
    report = _run(in_the_way)
    assert report["stats"]["compiled"] >= 2
    assert len(report["warnings"]) == 1 and "cannot use" in report["warnings"][0]


# ----------------------------------------------------------------------------- entries, in process


def test_an_entry_round_trips(tmp_path):
    path = tmp_path / ("k" + SUFFIX)
    write_entry(path, b"payload")
    assert read_entry(path) == b"payload"
    assert read_entry(tmp_path / "absent.ffk") is None
    assert [f.name for f in tmp_path.iterdir()] == [path.name]  # the temporary file is gone


@pytest.mark.parametrize("cut", [0, 5, len(MAGIC) + 20, -1])
def test_a_short_entry_is_corrupt(tmp_path, cut):
    path = tmp_path / ("k" + SUFFIX)
    write_entry(path, b"some payload bytes")
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(CorruptEntry):
        read_entry(path)


def test_the_key_depends_on_source_types_and_options():
    from fuseflow.codegen.source import array_types
    from fuseflow.ir import dtypes as dt
    from fuseflow.ir.types import TensorType

    f32, f64 = (array_types([TensorType(d, (4,))]) for d in (dt.float32, dt.float64))
    keys = {disk_cache.kernel_key("a", f32, {"parallel": False}), disk_cache.kernel_key("b", f32, {"parallel": False}),
            disk_cache.kernel_key("a", f64, {"parallel": False}), disk_cache.kernel_key("a", f32, {"parallel": True})}
    assert len(keys) == 4
    assert disk_cache.kernel_key("a", f32, {"parallel": False}) == disk_cache.kernel_key("a", f32, {"parallel": False})


def test_the_directory_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSEFLOW_CACHE_DIR", str(tmp_path / "here"))
    assert disk_cache.entries_dir() == tmp_path / "here" / "kernels"
    monkeypatch.delenv("FUSEFLOW_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert disk_cache.cache_root() == tmp_path / "xdg" / "fuseflow"
    for off in ("0", "off", "false", "no"):
        monkeypatch.setenv("FUSEFLOW_CACHE", off)
        assert not disk_cache.enabled()


# ----------------------------------------------------------------------------- the CLI


def test_cache_info_and_clear(cache_copy, monkeypatch, capsys):
    cache_dir, _, _ = cache_copy
    monkeypatch.setenv("FUSEFLOW_CACHE_DIR", str(cache_dir))
    n = len(_entries(cache_dir))
    size = sum(f.stat().st_size for f in _entries(cache_dir))
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"directory: {cache_dir / 'kernels'}\n" in out and "enabled: yes\n" in out
    assert f"entries: {n}\n" in out and f"({size} bytes)" in out
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out == f"removed {n} entries from {cache_dir / 'kernels'}\n"
    assert not _entries(cache_dir)
    assert main(["cache", "info"]) == 0
    assert "entries: 0\n" in capsys.readouterr().out


def test_cache_info_says_when_it_is_off(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FUSEFLOW_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FUSEFLOW_CACHE", "off")
    assert main(["cache", "info"]) == 0
    assert "enabled: no (FUSEFLOW_CACHE=off)\n" in capsys.readouterr().out


def test_cache_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["cache", "purge"])
    assert e.value.code == 2 and "invalid choice: 'purge'" in capsys.readouterr().err
