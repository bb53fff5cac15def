"""``tf.Variable`` and the initializers.

A variable's value lives in a session's variable store, not in the graph: the
graph holds its initial-value subgraph and the ops that read or assign it. A
read is an op of type ``VariableV2``; ``Assign``/``AssignAdd``/``AssignSub``
ops compute the new value, which the session commits after the run succeeds.
"""

from __future__ import annotations

from fuseflow.frontend import operators
from fuseflow.frontend.core_ops import convert_to_tensor, group, make_op, make_operation
from fuseflow.frontend.graph import Tensor, get_default_graph
from fuseflow.ir.types import TensorType, format_shape, shapes_compatible

GLOBAL_VARIABLES = "variables"
TRAINABLE_VARIABLES = "trainable_variables"


def _check_assign(var, value_type: TensorType) -> None:
    if value_type.dtype != var.dtype:
        raise TypeError(f"cannot assign a value of dtype {value_type.dtype.name} to variable '{var.op.name}' "
                        f"of dtype {var.dtype.name}")
    if var.validate_shape and not shapes_compatible(var.type.shape, value_type.shape):
        raise ValueError(f"cannot assign a value of shape {format_shape(value_type.shape)} to variable "
                         f"'{var.op.name}' of shape {format_shape(var.type.shape)}")


class Variable:
    """A mutable tensor kept by the session across `run` calls."""

    def __init__(self, initial_value=None, trainable=True, collections=None, validate_shape=True,
                 caching_device=None, name=None, variable_def=None, dtype=None, expected_shape=None,
                 import_scope=None, constraint=None, use_resource=None):
        if initial_value is None:
            raise ValueError("a Variable needs an initial_value")
        graph = get_default_graph()
        base = graph.unique_name(name or "Variable")
        with graph.name_scope(base + "/"):
            value = initial_value() if callable(initial_value) else initial_value
            self.initial_value = convert_to_tensor(value, dtype=dtype, name="initial_value")
        self.validate_shape = validate_shape
        self.type = TensorType(self.initial_value.dtype, self.initial_value.type.shape if validate_shape else None)
        self.trainable = trainable
        self.graph = graph
        self._ref = make_op("VariableV2", [], lambda b: b.variable(self), name=base, exact_name=True)
        self._ref.variable = self
        with graph.name_scope(base + "/"):
            self.initializer = self._assign_op("Assign", "set", self.initial_value, "Assign")
        for key in collections or ([GLOBAL_VARIABLES] + ([TRAINABLE_VARIABLES] if trainable else [])):
            graph.add_to_collection(key, self)

    # -- identity
    @property
    def op(self):
        return self._ref.op

    @property
    def name(self) -> str:
        return self._ref.name

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def shape(self):
        return self._ref.shape

    def get_shape(self):
        return self.shape

    @property
    def device(self) -> str:
        return self.op.device

    def _as_graph_element(self) -> Tensor:
        return self._ref

    def value(self) -> Tensor:
        return self._ref

    def read_value(self) -> Tensor:
        return self._ref

    def initialized_value(self) -> Tensor:
        return self.initial_value

    def __repr__(self) -> str:
        return f"<fuseflow.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}>"

    __hash__ = object.__hash__

    def __eq__(self, other) -> bool:
        return self is other

    # -- updates
    def _assign_op(self, type, mode, value, name):
        value = convert_to_tensor(value, dtype=self.dtype)

        def lower(b, v):
            _check_assign(self, v.type)
            return b.assign(self, mode, v)

        return make_operation(type, [value], lower, name=name)

    def assign(self, value, use_locking=None, name=None, read_value=True):
        """Sets the variable to `value`; the result evaluates to the new value."""
        return self._assign_op("Assign", "set", value, name or "Assign").outputs[0]

    def assign_add(self, delta, use_locking=None, name=None, read_value=True):
        return self._assign_op("AssignAdd", "add", delta, name or "AssignAdd").outputs[0]

    def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
        return self._assign_op("AssignSub", "sub", delta, name or "AssignSub").outputs[0]

    def eval(self, session=None):
        return self._ref.eval(session=session)

    def load(self, value, session=None):
        from fuseflow.session import get_default_session

        (session or get_default_session()).load_variable(self, value)


operators.install(Variable)


def assign(ref, value, validate_shape=None, use_locking=None, name=None):
    return ref.assign(value, name=name)


def assign_add(ref, value, use_locking=None, name=None):
    return ref.assign_add(value, name=name)


def assign_sub(ref, value, use_locking=None, name=None):
    return ref.assign_sub(value, name=name)


def global_variables(scope=None):
    return get_default_graph().get_collection(GLOBAL_VARIABLES)


all_variables = global_variables


def trainable_variables(scope=None):
    return get_default_graph().get_collection(TRAINABLE_VARIABLES)


def variables_initializer(var_list, name="init"):
    """An op that runs the initializers of `var_list`."""
    return group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer():
    return variables_initializer(global_variables())


initialize_all_variables = global_variables_initializer


def local_variables_initializer():
    return group(name="init_local")


