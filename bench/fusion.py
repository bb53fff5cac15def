"""Fused elementwise and reduction workloads: GELU and ``a*b + c*d - exp(e)`` on 2^24 float32,
row softmax of 4096x4096, against numpy, numexpr, jax.jit and hand-written numba loops.

    python -m fuseflow.bench.fusion [--quick]    # the harness, with only these workloads

Each ``*_case`` builds one `Case` for the harness (`fuseflow.bench.harness`); `session_runner`
also serves the dispatch and compile workloads.
"""

from __future__ import annotations

import sys

import numpy as np

from fuseflow.bench import peers
from fuseflow.bench.common import Case

GELU_C = 0.7978845608
GELU_NUMEXPR = "0.5*x*(1+tanh(0.7978845608*(x+0.044715*x**3)))"


def gelu(lib, x):
    """GELU, tanh form, written once for every library with numpy's names (np, jnp, tf)."""
    return 0.5 * x * (1 + lib.tanh(GELU_C * (x + 0.044715 * x**3)))


def mix(lib, a, b, c, d, e):
    """The five-input elementwise mix of the issue: two products and an exponential."""
    return a * b + c * d - lib.exp(e)


def softmax(lib, x):
    """Row softmax, shifted by the row max (numpy and jax; fuseflow uses ``tf.nn.softmax``)."""
    e = lib.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def session_runner(build, arrays: list):
    """A runner of ``Session.run`` on the graph ``build(tf, *placeholders)`` makes over
    placeholders shaped like `arrays`, fed with them."""
    import fuseflow as tf

    graph = tf.Graph()
    with graph.as_default():
        phs = [tf.placeholder(tf.as_dtype(a.dtype), shape=a.shape) for a in arrays]
        out = build(tf, *phs)
    sess = tf.Session(graph=graph)
    feed = dict(zip(phs, arrays))
    return lambda: sess.run(out, feed)


def _vectors(quick: bool, count: int) -> list:
    n = 1 << (16 if quick else 24)
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n, dtype=np.float32) for _ in range(count)]


def _size(n: int) -> str:
    return f"2^{n.bit_length() - 1} f32" if n & (n - 1) == 0 else f"{n} f32"


def gelu_case(quick: bool) -> Case:
    """GELU: one read and one write per element, memory-bound once fused."""
    (x,) = _vectors(quick, 1)
    return Case(_size(x.size), {
        "fuseflow": session_runner(gelu, [x]),
        "numpy": lambda: gelu(np, x),
        "numexpr": peers.numexpr_peer(GELU_NUMEXPR, ["x"], [x]),
        "jax": peers.jax_peer(gelu, [x]),
        "numba": peers.numba_peer(peers.gelu_loop, [x]),
    }, nbytes=2 * x.nbytes)


def mix_case(quick: bool) -> Case:
    """``a*b + c*d - exp(e)``: five reads and one write per element."""
    five = _vectors(quick, 5)
    return Case(f"5 x {_size(five[0].size)}", {
        "fuseflow": session_runner(mix, five),
        "numpy": lambda: mix(np, *five),
        "numexpr": peers.numexpr_peer("a*b+c*d-exp(e)", list("abcde"), five),
        "jax": peers.jax_peer(mix, five),
        "numba": peers.numba_peer(peers.mix_loop, five),
    }, nbytes=6 * five[0].nbytes)


def softmax_case(quick: bool) -> Case:
    """Row softmax: a max and a sum reduction per row around elementwise work (numexpr has no
    row reductions, so it is not a peer here)."""
    rows = 256 if quick else 4096
    m = np.random.default_rng(0).standard_normal((rows, rows), dtype=np.float32)
    return Case(f"{rows}x{rows} f32", {
        "fuseflow": session_runner(lambda tf, p: tf.nn.softmax(p), [m]),
        "numpy": lambda: softmax(np, m),
        "jax": peers.jax_peer(softmax, [m]),
        "numba": peers.numba_peer(peers.softmax_loop, [m]),
    }, nbytes=2 * m.nbytes)


if __name__ == "__main__":
    from fuseflow.bench import harness

    harness.main(["--only", "gelu,mix,softmax,compile_cold,compile_warm", *sys.argv[1:]])
