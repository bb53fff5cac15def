"""Random tensors: uniform, normal and truncated normal, with TF1's graph- and op-level seeds.

Each random op owns a run counter (session state): every `Session.run` draws
new numbers, and the same seeds give the same sequence in a new session.
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from fuseflow.frontend.core_ops import _shape_list, convert_to_tensor, make_op
from fuseflow.frontend.graph import Tensor, get_default_graph
from fuseflow.ir import dtypes as dt

DEFAULT_GRAPH_SEED = 87654321
_keys = itertools.count()


def set_random_seed(seed) -> None:
    """Sets the graph-level seed of the default graph."""
    get_default_graph().seed = None if seed is None else int(seed)


def get_seed(op_seed):
    """TF1's rule: (graph seed, op seed); unseeded ops get fresh random seeds."""
    graph = get_default_graph()
    if graph.seed is not None:
        return graph.seed, len(graph._ops) if op_seed is None else int(op_seed)
    if op_seed is not None:
        return DEFAULT_GRAPH_SEED, int(op_seed)
    fresh = np.frombuffer(os.urandom(16), dtype=np.int64)
    return int(fresh[0]), int(fresh[1])


def _static_shape(shape):
    if isinstance(shape, Tensor):
        if shape.known is None:
            raise ValueError(f"random shape '{shape.name}' must be known when the graph is built")
        shape = shape.known.tolist()
    return tuple(int(d) for d in _shape_list(shape))


def _random(kind, shape, dtype, seed, params, name, scale):
    dtype = dt.as_dtype(dtype)
    if not dtype.is_floating:
        raise TypeError(f"random {kind} supports float dtypes, got {dtype.name}")
    shape = _static_shape(shape)
    seed, seed2 = get_seed(seed)
    key = ("random", next(_keys))
    inputs = [convert_to_tensor(p, dtype=dtype) for p in params]

    def lower(b, *ps):
        counter = b.counter(key)
        draw = b.op(f"random_{kind}", counter, shape=shape, dtype=dtype, seed=seed, seed2=seed2)
        return scale(b, draw, *ps)

    return make_op({"uniform": "RandomUniform", "normal": "RandomStandardNormal",
                    "truncated_normal": "TruncatedNormal"}[kind], inputs, lower, name=name)


def _affine(b, draw, a, c):
    return b.op("add", b.op("mul", draw, a), c)


def random_uniform(shape, minval=0, maxval=None, dtype=dt.float32, seed=None, name=None):
    """Uniform numbers in ``[minval, maxval)`` (``maxval`` defaults to 1)."""
    maxval = 1 if maxval is None else maxval
    return _random("uniform", shape, dtype, seed, [minval, maxval], name,
                   lambda b, u, lo, hi: b.op("add", b.op("mul", u, b.op("sub", hi, lo)), lo))


def random_normal(shape, mean=0.0, stddev=1.0, dtype=dt.float32, seed=None, name=None):
    """Normal numbers with `mean` and `stddev`."""
    return _random("normal", shape, dtype, seed, [stddev, mean], name, _affine)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=dt.float32, seed=None, name=None):
    """Normal numbers redrawn until within two standard deviations of `mean`."""
    return _random("truncated_normal", shape, dtype, seed, [stddev, mean], name, _affine)
