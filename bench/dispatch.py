"""Per-call overhead: the time to call compiled code on (1,)-shaped float32 inputs, where the work
itself is nothing and only dispatch (argument checks, lookups, allocation of the result) remains.

- dispatch_jit: ``fuseflow.jit(add)`` against numba's ``njit(add)``, ``np.add`` and ``jax.jit(add)``
  (jax on arrays already on its device, waiting for each result).
- dispatch_session: ``Session.run`` of a two-placeholder add, against ``np.add``.
"""

from __future__ import annotations

import numpy as np

from fuseflow.bench import peers
from fuseflow.bench.common import Case, Skip, optional, repeated
from fuseflow.bench.fusion import session_runner

JIT_UNAVAILABLE = "fuseflow.jit unavailable: this build has no fuseflow.jit"


def add(a, b):
    """The tiny function every library compiles: one elementwise add."""
    return a + b


def _inputs() -> tuple:
    return np.ones(1, np.float32), np.full(1, 2.0, np.float32)


def _calls(quick: bool) -> int:
    return 1000 if quick else 20000


def _fuseflow_jit(n: int, a, b):
    import fuseflow

    if not hasattr(fuseflow, "jit"):
        return Skip(JIT_UNAVAILABLE)
    return repeated(fuseflow.jit(add), n, a, b)


def _jax(n: int, a, b):
    jitted = peers.jax_jit(lambda jnp, a, b: a + b)
    if isinstance(jitted, Skip):
        return jitted
    import jax

    return repeated(lambda x, y: jitted(x, y).block_until_ready(), n, jax.device_put(a), jax.device_put(b))


def dispatch_jit_case(quick: bool) -> Case:
    """Calls of a jitted add; numba's and numpy's are the floor to aim at."""
    a, b = _inputs()
    n = _calls(quick)
    numba = optional("numba")
    return Case("(1,) f32 per call", {
        "fuseflow": _fuseflow_jit(n, a, b),
        "numpy": repeated(np.add, n, a, b),
        "jax": _jax(n, a, b),
        "numba": repeated(numba.njit(add), n, a, b) if numba else Skip("numba not installed"),
    }, calls=n, target=2e-6)


def dispatch_session_case(quick: bool) -> Case:
    """``Session.run`` of ``a + b``: feed checks, the signature lookup and the kernel call."""
    a, b = _inputs()
    n = _calls(quick)
    run = session_runner(lambda tf, x, y: x + y, [a, b])
    return Case("(1,) f32 per run", {"fuseflow": repeated(run, n), "numpy": repeated(np.add, n, a, b)},
                calls=n, target=3e-6)
