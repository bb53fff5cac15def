"""``tf.train`` optimizers: gradient descent, momentum (Nesterov too) and Adam.

`minimize` = `compute_gradients` (a gradient request over the trainable
variables) + `apply_gradients` (assign ops that compute the new values from the
gradients and the slot variables). Slot variables are ordinary non-trainable
variables, initialised by ``global_variables_initializer``. The updates of one
step all read the gradients of the same, old values; the optimizer's own
counters (Adam's beta powers, ``global_step``) advance after the updates.
"""

from __future__ import annotations

from fuseflow.frontend import math_ops as m
from fuseflow.frontend.array_ops import zeros_like
from fuseflow.frontend.core_ops import convert_to_tensor, group
from fuseflow.frontend.gradients import gradients
from fuseflow.frontend.graph import get_default_graph
from fuseflow.frontend.variables import Variable, trainable_variables


class Optimizer:
    """The base: subclasses define `_apply_dense(grad, var)` and optionally `_finish(update_ops)`."""

    def __init__(self, learning_rate, use_locking=False, name="Optimizer") -> None:
        self._lr = learning_rate
        self._name = name
        self._slots: dict = {}

    def compute_gradients(self, loss, var_list=None, gate_gradients=None, aggregation_method=None,
                          colocate_gradients_with_ops=False, grad_loss=None):
        """``[(gradient or None, variable), ...]`` for `var_list` (default: the trainable variables)."""
        var_list = list(var_list) if var_list is not None else trainable_variables()
        if not var_list:
            raise ValueError("no variables to optimize")
        grads = gradients(loss, var_list, grad_ys=None if grad_loss is None else [grad_loss])
        return list(zip(grads, var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """An op that applies the gradients (and then increments `global_step`)."""
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            names = [v.name for _, v in grads_and_vars]
            raise ValueError(f"No gradients provided for any variable: {names}; check that the loss depends "
                             "on them through differentiable ops")
        graph = get_default_graph()
        with graph.name_scope(name or self._name):
            updates = [self._apply_dense(g, v) for g, v in pairs]
            with graph.control_dependencies(updates):
                finish = self._finish()
                if global_step is not None:
                    finish.append(global_step.assign_add(1))
            return group(*updates, *finish)

    def minimize(self, loss, global_step=None, var_list=None, gate_gradients=None, aggregation_method=None,
                 colocate_gradients_with_ops=False, name=None, grad_loss=None):
        return self.apply_gradients(self.compute_gradients(loss, var_list, grad_loss=grad_loss),
                                    global_step=global_step, name=name)

    # -- slots
    def _slot(self, var, slot_name, initial=None):
        key = (var, slot_name)
        if key not in self._slots:
            graph = get_default_graph()
            with graph.name_scope(None):
                value = zeros_like(var.initial_value) if initial is None else initial
                self._slots[key] = Variable(value, trainable=False, name=f"{var.op.name}/{self._name}_{slot_name}")
        return self._slots[key]

    def get_slot(self, var, name):
        return self._slots.get((var, name))

    def get_slot_names(self):
        return sorted({name for _, name in self._slots})

    def _lr_for(self, var):
        return convert_to_tensor(self._lr, dtype=var.dtype)

    def _apply_dense(self, grad, var):
        raise NotImplementedError

    def _finish(self) -> list:
        return []


class GradientDescentOptimizer(Optimizer):
    """``var -= learning_rate * grad``."""

    def __init__(self, learning_rate, use_locking=False, name="GradientDescent") -> None:
        super().__init__(learning_rate, use_locking, name)

    def _apply_dense(self, grad, var):
        return var.assign_sub(self._lr_for(var) * grad)


class MomentumOptimizer(Optimizer):
    """``accum = momentum * accum + grad``; ``var -= lr * accum`` (Nesterov: ``lr * (grad + momentum * accum)``)."""

    def __init__(self, learning_rate, momentum, use_locking=False, name="Momentum", use_nesterov=False) -> None:
        super().__init__(learning_rate, use_locking, name)
        self._momentum = momentum
        self._nesterov = use_nesterov

    def _apply_dense(self, grad, var):
        lr = self._lr_for(var)
        mu = convert_to_tensor(self._momentum, dtype=var.dtype)
        accum = self._slot(var, "momentum").assign(self._slot(var, "momentum") * mu + grad)
        step = (grad + mu * accum) if self._nesterov else accum
        return var.assign_sub(lr * step)


class AdamOptimizer(Optimizer):
    """Adam (Kingma & Ba) with TF1's bias-corrected step size and ``epsilon`` outside the square root."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, use_locking=False,
                 name="Adam") -> None:
        super().__init__(learning_rate, use_locking, name)
        self._beta1, self._beta2, self._epsilon = beta1, beta2, epsilon
        self._powers = None

    def _beta_powers(self, dtype):
        if self._powers is None:
            graph = get_default_graph()
            with graph.name_scope(None):
                self._powers = (Variable(convert_to_tensor(self._beta1, dtype=dtype), trainable=False,
                                         name="beta1_power"),
                                Variable(convert_to_tensor(self._beta2, dtype=dtype), trainable=False,
                                         name="beta2_power"))
        return self._powers

    def _apply_dense(self, grad, var):
        p1, p2 = self._beta_powers(var.dtype)
        b1 = convert_to_tensor(self._beta1, dtype=var.dtype)
        b2 = convert_to_tensor(self._beta2, dtype=var.dtype)
        one = convert_to_tensor(1.0, dtype=var.dtype)
        lr_t = self._lr_for(var) * m.sqrt(one - p2) / (one - p1)
        mslot, vslot = self._slot(var, "m"), self._slot(var, "v")
        m_t = mslot.assign(b1 * mslot + (one - b1) * grad)
        v_t = vslot.assign(b2 * vslot + (one - b2) * m.square(grad))
        eps = convert_to_tensor(self._epsilon, dtype=var.dtype)
        return var.assign_sub(lr_t * m_t / (m.sqrt(v_t) + eps))

    def _finish(self) -> list:
        if self._powers is None:
            return []
        p1, p2 = self._powers
        return [p1.assign(p1 * self._beta1), p2.assign(p2 * self._beta2)]


def get_global_step(graph=None):
    graph = graph or get_default_graph()
    found = graph.get_collection("global_step")
    return found[0] if found else None


def get_or_create_global_step(graph=None):
    from fuseflow.ir import dtypes as dt

    step = get_global_step(graph)
    if step is None:
        step = Variable(convert_to_tensor(0, dtype=dt.int64), trainable=False, name="global_step")
        get_default_graph().add_to_collection("global_step", step)
    return step


create_global_step = get_or_create_global_step
