"""The peers fuseflow is measured against, each optional: numexpr, jax.jit and hand-written numba
``@njit(parallel=True)`` loops. A peer that is not installed becomes a `Skip`, never an error."""

from __future__ import annotations

import numpy as np

from fuseflow.bench.common import Skip, optional

GELU_C = np.float32(0.7978845608)
# The loops below are plain Python until numba compiles them; without numba they are never called.
prange = getattr(optional("numba"), "prange", range)
# float32 globals: numba freezes them as float32 constants, so the loops stay in float32.
HALF, ONE, CUBIC = np.float32(0.5), np.float32(1.0), np.float32(0.044715)


def numexpr_peer(expr: str, names: list[str], arrays: list):
    """A runner evaluating `expr` with numexpr over `arrays` bound to `names`."""
    ne = optional("numexpr")
    if ne is None:
        return Skip("numexpr not installed")
    env = dict(zip(names, arrays))
    return lambda: ne.evaluate(expr, local_dict=env)


def jax_jit(fn):
    """``jax.jit`` of ``fn(jnp, *xs)``, or a `Skip` when jax is missing."""
    jax = optional("jax")
    if jax is None:
        return Skip("jax not installed")
    import jax.numpy as jnp

    return jax.jit(lambda *xs: fn(jnp, *xs))


def jax_peer(fn, arrays: list):
    """A runner of ``jax.jit(fn)`` on `arrays` already on the device, waiting for the result
    (jax dispatches asynchronously: without the wait it would time only the enqueueing)."""
    jitted = jax_jit(fn)
    if isinstance(jitted, Skip):
        return jitted
    import jax

    dev = [jax.device_put(a) for a in arrays]
    return lambda: jitted(*dev).block_until_ready()


def numba_peer(loop, arrays: list, parallel: bool = True):
    """A runner of the hand-written `loop(*arrays, out)` compiled by numba, writing into one
    preallocated output like fuseflow's kernels do."""
    numba = optional("numba")
    if numba is None:
        return Skip("numba not installed")
    kernel = numba.njit(parallel=parallel)(loop)
    out = np.empty_like(arrays[0])
    return lambda: kernel(*arrays, out)


def gelu_loop(x, out):
    """GELU (tanh form) element by element, in float32."""
    for i in prange(x.size):
        v = x[i]
        out[i] = HALF * v * (ONE + np.tanh(GELU_C * (v + CUBIC * v * v * v)))


def mix_loop(a, b, c, d, e, out):
    """``a*b + c*d - exp(e)`` element by element."""
    for i in prange(a.size):
        out[i] = a[i] * b[i] + c[i] * d[i] - np.exp(e[i])


def softmax_loop(x, out):
    """Row softmax: rows in parallel, each row's max, exponentials and sum in one thread."""
    for r in prange(x.shape[0]):
        row = x[r]
        top = row.max()
        total = np.float32(0)
        for j in range(row.size):
            out[r, j] = np.exp(row[j] - top)
            total += out[r, j]
        for j in range(row.size):
            out[r, j] /= total


def peer_versions() -> dict:
    """Each optional peer's version, or "not installed"."""
    versions = {}
    for name in ("numexpr", "jax", "numba", "matplotlib"):
        module = optional(name)
        versions[name] = getattr(module, "__version__", "?") if module else "not installed"
    return versions
