"""The TF1 user graph: `Graph`, `Operation`, `Tensor` and the scopes that shape new ops.

Each `Operation` records its type, name (with name scopes), inputs, attributes,
device, control inputs and the user's file and line. Its `lower` function
expands it into IR primitives through a `fuseflow.ir.builder.Builder`; the same
function runs when the op is built (over the inputs' static, possibly partial
types, to infer output shapes and raise shape errors where the user wrote the
op) and when a session lowers the graph (over concrete types).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from fuseflow.ir.builder import Builder
from fuseflow.ir.core import Loc
from fuseflow.ir.devices import DeviceSpec
from fuseflow.ir.dtypes import DType
from fuseflow.ir.types import TensorType, format_shape

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE_DIRS = tuple(os.path.join(_ROOT, d) + os.sep for d in ("frontend", "ir", "passes", "codegen", "runtime",
                                                              "fuseflow"))


def user_location() -> tuple[str, int]:
    """The innermost stack frame outside fuseflow: where the user created the op."""
    frame = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(_PACKAGE_DIRS) and not path.startswith("<frozen"):
            return path, frame.f_lineno
        frame = frame.f_back
    return "", 0


class TensorShape:
    """A static shape: dims may be None; ``dims=None`` is an unknown rank."""

    def __init__(self, dims) -> None:
        self.dims = None if dims is None else tuple(dims)

    @property
    def ndims(self):
        return None if self.dims is None else len(self.dims)

    rank = ndims

    def as_list(self):
        if self.dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape")
        return list(self.dims)

    def is_fully_defined(self) -> bool:
        return self.dims is not None and None not in self.dims

    def __iter__(self):
        return iter(self.as_list())

    def __len__(self) -> int:
        return len(self.as_list())

    def __getitem__(self, i):
        return self.as_list()[i]

    def __eq__(self, other) -> bool:
        other_dims = other.dims if isinstance(other, TensorShape) else tuple(other)
        return self.dims == other_dims

    def __repr__(self) -> str:
        return f"TensorShape({None if self.dims is None else list(self.dims)})"

    def __str__(self) -> str:
        return format_shape(self.dims)


class Tensor:
    """One output of an `Operation`: a symbolic value with a static dtype and (partial) shape."""

    def __init__(self, op: Operation, index: int, type: TensorType) -> None:
        self.op = op
        self.value_index = index
        self.type = type
        self.known = None  # the value when it follows from constants alone (small tensors)

    weak = False  # a Python-number argument of a jitted function: adopts the dtype it meets (see math_ops)

    @property
    def graph(self) -> Graph:
        return self.op.graph

    @property
    def name(self) -> str:
        return f"{self.op.name}:{self.value_index}"

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> TensorShape:
        return TensorShape(self.type.shape)

    def get_shape(self) -> TensorShape:
        return self.shape

    @property
    def device(self) -> str:
        return self.op.device

    def consumers(self):
        return [op for op in self.graph.get_operations() if self in op.inputs]

    def eval(self, feed_dict=None, session=None):
        from fuseflow.session import get_default_session

        return (session or get_default_session()).run(self, feed_dict)

    def __repr__(self) -> str:
        return f"<fuseflow.Tensor '{self.name}' shape={self.shape} dtype={self.dtype.name}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other) -> bool:  # TF1 graph mode: identity, so tensors key dicts
        return self is other

    def __bool__(self) -> bool:
        raise TypeError(f"using tensor '{self.name}' as a Python bool is not allowed: "
                        "its value is only known when a session runs it")

    def __iter__(self):
        if self.type.shape is None or not self.type.shape or self.type.shape[0] is None:
            raise TypeError(f"tensor '{self.name}' of shape {format_shape(self.type.shape)} is not iterable")
        from fuseflow.frontend.array_ops import unstack

        return iter(unstack(self))

    def __len__(self) -> int:
        if self.type.shape is None or not self.type.shape or self.type.shape[0] is None:
            raise TypeError(f"len() of tensor '{self.name}' with shape {format_shape(self.type.shape)}")
        return self.type.shape[0]

    __array_priority__ = 100


class Operation:
    """A node of the user graph; `lower(builder, *input_values, **attrs)` expands it to IR."""

    def __init__(self, graph, type, name, inputs, attrs, lower, control_inputs, device, loc):
        self.graph = graph
        self.type = type
        self.name = name
        self.inputs = tuple(inputs)
        self.attrs = attrs
        self.lower = lower
        self.control_inputs = list(control_inputs)
        self.device = device
        self.loc = loc
        self.outputs: tuple[Tensor, ...] = ()
        self.index = len(graph._ops)

    def run(self, feed_dict=None, session=None):
        from fuseflow.session import get_default_session

        (session or get_default_session()).run(self, feed_dict)

    def where(self) -> str:
        """`'name' (file:line)` for error messages."""
        return str(self.loc)

    def __repr__(self) -> str:
        return f"<fuseflow.Operation '{self.name}' type={self.type}>"


class Graph:
    """A TF1 graph: a list of operations plus the scopes new operations pick up."""

    def __init__(self) -> None:
        self._ops: list[Operation] = []
        self._by_name: dict[str, Operation] = {}
        self._name_counts: dict[str, int] = {}
        self._scope = ""
        self._device = DeviceSpec()
        self._control: list[Operation] = []
        self.seed = None
        self._collections: dict[str, list] = {}
        self._finalized = False
        self.numpy_semantics = False  # set by jit tracing: Python operators follow numpy's dtype rules

    # -- scopes
    @contextlib.contextmanager
    def as_default(self):
        _default.stack.append(self)
        try:
            yield self
        finally:
            _default.stack.pop()

    @contextlib.contextmanager
    def name_scope(self, name):
        old = self._scope
        if name is None or name == "":
            self._scope = ""
        elif name.endswith("/"):
            self._scope = name
        else:
            self._scope = self.unique_name(name, mark=True) + "/"
        try:
            yield self._scope
        finally:
            self._scope = old

    @contextlib.contextmanager
    def device(self, name):
        old = self._device
        self._device = DeviceSpec() if name is None else old.merge(DeviceSpec.parse(name))
        try:
            yield
        finally:
            self._device = old

    @contextlib.contextmanager
    def control_dependencies(self, control_inputs):
        old = self._control
        if control_inputs is None:
            self._control = []
        else:
            self._control = old + [self.as_operation(c) for c in control_inputs]
        try:
            yield
        finally:
            self._control = old

    # -- names
    def unique_name(self, name: str, mark: bool = True) -> str:
        full = self._scope + name
        count = self._name_counts.get(full, 0)
        unique = full if count == 0 else f"{full}_{count}"
        while unique in self._name_counts and unique != full:
            count += 1
            unique = f"{full}_{count}"
        if mark:
            self._name_counts[full] = count + 1
            self._name_counts.setdefault(unique, 1)
        return unique

    def get_operations(self):
        return list(self._ops)

    def get_operation_by_name(self, name: str) -> Operation:
        if name not in self._by_name:
            raise KeyError(f"the graph has no operation named '{name}'")
        return self._by_name[name]

    def get_tensor_by_name(self, name: str) -> Tensor:
        op_name, sep, index = name.rpartition(":")
        if not sep or not index.isdigit():
            raise ValueError(f"'{name}' is not a tensor name: tensor names look like 'op_name:0'")
        op = self._by_name.get(op_name)
        if op is None or int(index) >= len(op.outputs):
            raise KeyError(f"the graph has no tensor named '{name}'")
        return op.outputs[int(index)]

    def as_graph_element(self, obj):
        """A fetch or feed key (Tensor, Operation, Variable or name) as this graph's Tensor/Operation."""
        if isinstance(obj, str):
            return self.get_tensor_by_name(obj) if ":" in obj else self.get_operation_by_name(obj)
        if hasattr(obj, "_as_graph_element"):
            obj = obj._as_graph_element()
        if isinstance(obj, (Tensor, Operation)):
            if obj.graph is not self:
                raise ValueError(f"{type(obj).__name__} '{obj.name}' belongs to another graph, "
                                 "not to this session's graph")
            return obj
        raise TypeError(f"cannot interpret {type(obj).__name__} {obj!r} as a Tensor or Operation")

    def as_operation(self, obj) -> Operation:
        element = self.as_graph_element(obj)
        return element.op if isinstance(element, Tensor) else element

    def get_collection(self, key):
        return list(self._collections.get(key, []))

    def add_to_collection(self, key, value) -> None:
        self._collections.setdefault(key, []).append(value)

    def finalize(self) -> None:
        self._finalized = True

    # -- building
    def create_op(self, type, inputs, lower, attrs=None, name=None, exact_name=False) -> Operation:
        """Adds an op; infers its output types by lowering it over its inputs' static types."""
        if self._finalized:
            raise RuntimeError("the graph is finalized and cannot be modified")
        for t in inputs:
            if t.graph is not self:
                raise ValueError(f"tensor '{t.name}' belongs to another graph than the op {type} being built")
        attrs = attrs or {}
        file, line = user_location()
        op_name = name if exact_name else self.unique_name(name or type)
        loc = Loc(op_name, file, line)
        op = Operation(self, type, op_name, inputs, attrs, lower, self._control, self._device.to_string(), loc)
        op.outputs = self._infer_outputs(op, loc)
        self._ops.append(op)
        self._by_name[op_name] = op
        return op

    def _infer_outputs(self, op: Operation, loc: Loc) -> tuple:
        b = InferenceBuilder()
        b.loc = loc
        args = []
        for t in op.inputs:
            v = b.add_arg(t.type)
            if t.known is not None:
                b.set_known(v, t.known)
            args.append(v)
        try:
            results = op.lower(b, *args, **op.attrs)
        except NeedsShape as e:
            dtypes = e.args or (op.inputs[0].dtype,)
            return tuple(Tensor(op, i, TensorType(d, None)) for i, d in enumerate(dtypes))
        except (ValueError, TypeError, IndexError) as e:
            raise type(e)(f"{op.type} {loc}: {e}") from None
        results = results if isinstance(results, tuple) else (results,)
        outputs = []
        for i, v in enumerate(results):
            t = Tensor(op, i, v.type)
            t.known = b.known(v)
            outputs.append(t)
        return tuple(outputs)


class NeedsShape(Exception):
    """Raised by a lowering that cannot type its result from partially known input shapes.

    Its args are the result dtypes (default: the first input's dtype, one result).
    """


class InferenceBuilder(Builder):
    """A builder for build-time shape inference: values it cannot know become fresh arguments."""

    def unknown(self, type: TensorType):
        return self.add_arg(type)

    def counter(self, key):
        from fuseflow.ir import dtypes as dt

        return self.add_arg(TensorType(dt.int64, ()))

    def variable(self, var):
        return self.add_arg(var.type)

    def placeholder(self, type: TensorType):
        return self.add_arg(type)

    def assign(self, var, mode, value):
        return self.add_arg(var.type)


class _DefaultGraph(threading.local):
    def __init__(self) -> None:
        self.stack: list[Graph] = []
        self.base = Graph()


_default = _DefaultGraph()


def get_default_graph() -> Graph:
    return _default.stack[-1] if _default.stack else _default.base


def reset_default_graph() -> None:
    if _default.stack:
        raise AssertionError("reset_default_graph() inside a `with graph.as_default()` block is not allowed")
    _default.base = Graph()


def name_scope(name, default_name=None, values=None):
    return get_default_graph().name_scope(name if name is not None else default_name)


def device(name):
    return get_default_graph().device(name)


def control_dependencies(control_inputs):
    return get_default_graph().control_dependencies(control_inputs)
