"""`Session`: runs parts of a graph, compiling each distinct run signature once.

A run's signature is its fetches, its fed tensors with their runtime shapes and
dtypes, and the types of the state it reads. The first run of a signature
lowers the needed part of the graph to IR and compiles it into an
`Executable`; later runs only check the feeds and execute. Variable values (and
random-op counters) live in the session's store and are replaced only after
every step of a run has succeeded.

Placement follows the session's config (TF's ``allow_soft_placement`` and
``log_device_placement``): ops run on the device their ``tf.device`` scope asks
for, or on the GPU by default when one is present (`fuseflow.runtime.devices`).
A variable stays on its device between runs (the store holds device arrays);
fetches come back as numpy arrays.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

import numpy as np

from fuseflow.frontend.graph import Operation, Tensor, get_default_graph
from fuseflow.frontend.lowering import COUNTER_TYPE, lower
from fuseflow.ir.types import TensorType, format_shape, shapes_compatible
from fuseflow.passes.manager import PassManager
from fuseflow.runtime import devices
from fuseflow.runtime.executable import Executable

_local = threading.local()


def get_default_session():
    stack = getattr(_local, "stack", [])
    if not stack:
        raise ValueError("no default session: use `with tf.Session() as sess:` or pass session=")
    return stack[-1]


def flatten(structure, leaf):
    """The rebuild function of a nested structure (lists, tuples, namedtuples, dicts), from a flat list
    of values; `leaf(x)` takes each leaf and returns the rebuild of that leaf."""
    if isinstance(structure, (list, tuple)):
        parts = [flatten(s, leaf) for s in structure]
        kind = type(structure)
        if hasattr(structure, "_fields"):  # namedtuple
            return lambda vals: kind(*[p(vals) for p in parts])
        return lambda vals: kind(p(vals) for p in parts)
    if isinstance(structure, dict):
        parts = {k: flatten(v, leaf) for k, v in structure.items()}
        return lambda vals: type(structure)((k, p(vals)) for k, p in parts.items())
    return leaf(structure)


def _repeat_key(fetches, feed_dict) -> tuple:
    """What `Session.run` looks a repeated run up by (a TypeError or AttributeError when it has none)."""
    return type(fetches), fetches, tuple([(k, v.shape, v.dtype) for k, v in feed_dict.items()]) if feed_dict else ()


def _flatten(fetches, graph, out: list):
    """Appends the graph elements of a nested fetch structure to `out`; returns a rebuild function."""

    def leaf(x):
        if x is None:
            raise TypeError("fetch argument None has an invalid type: fetch a Tensor, an Operation, a Variable "
                            "or a name")
        index = len(out)
        out.append(graph.as_graph_element(x))
        return lambda vals: vals[index]

    return flatten(fetches, leaf)


def _feed_array(t: Tensor, value) -> np.ndarray:
    """`value` as an array of `t`'s dtype; unsafe conversions and wrong shapes raise naming `t`."""
    if t.dtype.is_string:
        arr = np.asarray(value, dtype=object)
    else:
        arr = np.asarray(value)
        target = t.dtype.np
        if arr.dtype != target:
            if not np.can_cast(arr.dtype, target, casting="same_kind") or arr.dtype.kind in "OSU":
                raise TypeError(f"Cannot feed value of dtype {arr.dtype} for Tensor '{t.name}', which has dtype "
                                f"{t.dtype.name}: the conversion is not safe")
            converted = arr.astype(target)
            if arr.dtype.kind in "iu" and target.kind in "iu" and not np.array_equal(converted, arr):
                raise TypeError(f"Cannot feed value {value!r} for Tensor '{t.name}' of dtype {t.dtype.name}: "
                                "it does not fit")
            arr = converted
    if not shapes_compatible(t.type.shape, arr.shape):
        raise ValueError(f"Cannot feed value of shape {format_shape(arr.shape)} for Tensor '{t.name}', which has "
                         f"shape {format_shape(t.type.shape)}")
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)  # (ascontiguousarray makes 0-d 1-d)


class _Compiled:
    """One signature's executable and the meaning of its arguments and results."""

    def __init__(self, lowered, config=None) -> None:
        self.lowered = lowered
        placement = devices.placement(config, lowered.arg_devices, lowered.result_devices)
        self.module = PassManager(placement=placement).run(lowered.module)
        self.epoch = -1
        # a run that updates variables is a training step, run in a loop: worth a native driver
        writes_variables = any(not isinstance(k, tuple) for k in lowered.state_out)
        self.executable = Executable(self.module.main, native=writes_variables)
        self.n_fetch = sum(i is not None for i in lowered.fetch_index)
        results = self.module.main.results
        state_values = set(results[self.n_fetch:])
        # Results that alias the caller's, the executable's or the store's arrays are copied.
        self.copy = [self.executable.result_aliases[i] or (i < self.n_fetch and results[i] in state_values)
                     for i in range(len(results))]
        self.any_copy = any(self.copy)
        # every state value comes back with the shape it went in with: the store keeps its epoch
        fn = self.module.main
        shape_in = {k: v.type.shape for k, v in zip(lowered.state_in, fn.args[len(lowered.feeds):])}
        self.same_state_shapes = all(shape_in.get(k) == v.type.shape
                                     for k, v in zip(lowered.state_out, results[self.n_fetch:]))
        # no state, nothing to copy, every fetch a tensor: `Session.execute` takes a short path
        self.plain = (not lowered.state_in and not lowered.state_out and not any(self.copy)
                      and lowered.fetch_index == list(range(len(results))))
        # fetches of rank 0 come back as numpy scalars, as in TF
        self.unwrap = [i is not None and results[i].type.shape == () for i in lowered.fetch_index]
        self.any_unwrap = any(self.unwrap)
        # where each state argument is read, when some is on a device (None: all on the host)
        n_feeds = len(lowered.feeds)
        state_devices = self.executable.arg_devices[n_feeds:]
        self.state_devices = state_devices if any(state_devices) else None
        # the variable whose array the executable may update in place (see `Session.execute`)
        donated = self.executable.donated_arg
        self.donated_key = lowered.state_in[donated - n_feeds] if donated is not None and donated >= n_feeds else None


class ConfigProto:
    """TF1's session configuration. fuseflow reads ``allow_soft_placement`` (a GPU request that cannot be
    met falls back to the CPU instead of failing) and ``log_device_placement`` (print each op's device);
    other TF fields are accepted and kept, without effect."""

    def __init__(self, allow_soft_placement: bool = False, log_device_placement: bool = False, **fields) -> None:
        self.allow_soft_placement = allow_soft_placement
        self.log_device_placement = log_device_placement
        self.__dict__.update(fields)


class Session:
    """A TF1 session: `run(fetches, feed_dict)` over one graph, with its own variable store."""

    def __init__(self, target="", graph=None, config=None) -> None:
        self.graph = graph or get_default_graph()
        self.config = config
        self._store: dict = {}
        self._cache: dict = {}
        self.compile_count = 0
        self.compile_seconds = 0.0
        self._single: dict = {}
        self._repeat: dict = {}  # (fetches, feed keys and array types) -> (compiled, feed keys in order, rebuild)
        self._epoch = 0  # advances when a stored value changes shape: executables then recheck theirs
        self._closed = False

    # -- context
    def __enter__(self):
        _local.stack = getattr(_local, "stack", []) + [self]
        return self

    def __exit__(self, *exc) -> None:
        _local.stack = _local.stack[:-1]
        self.close()

    @contextlib.contextmanager
    def as_default(self):
        _local.stack = getattr(_local, "stack", []) + [self]
        try:
            yield self
        finally:
            _local.stack = _local.stack[:-1]

    def close(self) -> None:
        self._closed = True

    # -- running
    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """Evaluates `fetches` (a tensor, op, name, or nested list/tuple/dict of them) given `feed_dict`."""
        try:  # a repeat of an earlier run: same fetch object, same feed keys with arrays of the same type
            compiled, order, rebuild = self._repeat[_repeat_key(fetches, feed_dict)]
        except (KeyError, TypeError, AttributeError):
            return self._run(fetches, feed_dict)
        if compiled.epoch != self._epoch or self._closed:
            return self._run(fetches, feed_dict)
        return rebuild(self.execute(compiled, [feed_dict[k] for k in order]))

    def _run(self, fetches, feed_dict):
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        try:  # one fetch of a tensor, op or variable: its element list is remembered
            elements, rebuild = self._single[fetches]
        except (KeyError, TypeError):
            elements = []
            rebuild = _flatten(fetches, self.graph, elements)
            if isinstance(fetches, (Tensor, Operation)) or hasattr(fetches, "_as_graph_element"):
                self._single[fetches] = (elements, rebuild)
        feeds = self._feeds(feed_dict) if feed_dict else {}
        key = (tuple(elements), tuple((t, a.shape, a.dtype.str) for t, a in feeds.items()))
        compiled = self._cache.get(key)
        if compiled is None or compiled.epoch != self._epoch and not self._state_matches(compiled):
            compiled = self.prepare(elements, feeds)
            self._cache[key] = compiled
        compiled.epoch = self._epoch
        self._remember(fetches, feed_dict, compiled, feeds, rebuild)
        return rebuild(self.execute(compiled, list(feeds.values())))

    def _remember(self, fetches, feed_dict, compiled, feeds, rebuild) -> None:
        """Lets `run` skip the feed checks when the same fetches are run with arrays of the same types."""
        if not all(type(v) is np.ndarray and v is feeds[self.graph.as_graph_element(k)]
                   for k, v in (feed_dict or {}).items()):
            return  # a value was converted: it must be converted again each time
        nested = (list, tuple, dict)
        if isinstance(fetches, nested) and (type(fetches) is not tuple or any(isinstance(f, nested) for f in fetches)):
            return  # only single fetches and flat tuples: a nested namedtuple would equal the plain tuple
        try:
            key = _repeat_key(fetches, feed_dict)
            by_tensor = {self.graph.as_graph_element(k): k for k in (feed_dict or {})}
            self._repeat[key] = (compiled, [by_tensor[t] for t in feeds], rebuild)
        except TypeError:  # an unhashable fetch: no fast path
            pass

    def _feeds(self, feed_dict) -> dict:
        feeds = {}
        for k, value in (feed_dict or {}).items():
            t = self.graph.as_graph_element(k)
            if not isinstance(t, Tensor):
                raise TypeError(f"cannot feed operation '{t.name}': feed_dict keys must be tensors")
            feeds[t] = _feed_array(t, value)
        return dict(sorted(feeds.items(), key=lambda kv: (kv[0].op.index, kv[0].value_index)))

    def _state_types(self) -> dict:
        return {k: TensorType(COUNTER_TYPE.dtype if isinstance(k, tuple) else k.dtype, np.shape(v))
                for k, v in self._store.items()}

    def _state_matches(self, compiled) -> bool:
        fn = compiled.lowered.module.main
        n_feeds = len(compiled.lowered.feeds)
        for key, arg in zip(compiled.lowered.state_in, fn.args[n_feeds:]):
            value = self._store.get(key)
            if value is not None and np.shape(value) != arg.type.shape:
                return False
        return True

    def prepare(self, elements, feeds: dict) -> _Compiled:
        """Lowers, optimises and compiles the run of `elements` with `feeds` {Tensor: array}."""
        start = time.perf_counter()
        feed_types = {t: TensorType(t.dtype, a.shape) for t, a in feeds.items()}
        compiled = _Compiled(lower(elements, feed_types, self._state_types()), self.config)
        self.compile_count += 1
        self.compile_seconds += time.perf_counter() - start
        return compiled

    def execute(self, compiled: _Compiled, args: list) -> list:
        """Runs `compiled` on the fed arrays `args` (in its feed order) and the store; commits the new state."""
        if compiled.plain:
            results = compiled.executable.run(args)
            return [r[()] if u else r for r, u in zip(results, compiled.unwrap)] if compiled.any_unwrap else results
        lowered, store = compiled.lowered, self._store
        key = compiled.donated_key
        # The store's array of `key` is updated in place only when nothing else holds it (not the
        # caller, not another variable), so nobody sees it change; the references counted are the
        # store's and getrefcount's own (checked before `state` holds the arrays too).
        donate = key is not None and key in store and sys.getrefcount(store[key]) == 2
        if compiled.state_devices:  # some state lives on a GPU: moved there once, kept there
            state = [self._resident(k, d) for k, d in zip(lowered.state_in, compiled.state_devices)]
        else:
            state = [store[k] if k in store else np.zeros((), np.int64) for k in lowered.state_in]
        results = (compiled.executable.run_donating if donate else compiled.executable.run)([*args, *state])
        if compiled.any_copy:
            results = [devices.copy_value(r) if c else r for r, c in zip(results, compiled.copy)]
        if compiled.same_state_shapes:
            store.update(zip(lowered.state_out, results[compiled.n_fetch:]))
        else:
            for key, value in zip(lowered.state_out, results[compiled.n_fetch:]):
                old = store.get(key)
                if old is None or old.shape != value.shape:
                    self._epoch += 1
                store[key] = value
        return [None if i is None else results[i][()] if u else results[i]
                for i, u in zip(lowered.fetch_index, compiled.unwrap)]

    def _resident(self, key, device):
        """The stored value of `key`, moved once to `device` (where this run reads it) and kept there."""
        value = self._store[key] if key in self._store else np.zeros((), np.int64)
        if device:
            moved = devices.move(value, device)
            if moved is not value and key in self._store:
                self._store[key] = moved
            value = moved
        return value

    def load_variable(self, var, value) -> None:
        arr = np.asarray(value, dtype=var.dtype.np)
        if not shapes_compatible(var.type.shape, arr.shape):
            raise ValueError(f"cannot load a value of shape {format_shape(arr.shape)} into variable "
                             f"'{var.op.name}' of shape {format_shape(var.type.shape)}")
        self._store[var] = arr.copy()
        self._epoch += 1


class InteractiveSession(Session):
    """A session that makes itself the default when created."""

    def __init__(self, target="", graph=None, config=None) -> None:
        super().__init__(target, graph, config)
        _local.stack = getattr(_local, "stack", []) + [self]

    def close(self) -> None:
        super().close()
        stack = getattr(_local, "stack", [])
        if self in stack:
            stack.remove(self)


