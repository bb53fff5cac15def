"""fuseflow: TF1 graph-mode programs compiled to native kernels.

``import fuseflow as tf`` gives the TF1 names: graphs, sessions, variables and
the ops. This module only re-exports; the code lives in the layers
(frontend/ → ir/ → passes/ → codegen/ → runtime/).
"""

from fuseflow import datasets, errors, nn, train  # noqa: F401
from fuseflow.frontend.array_ops import (  # noqa: F401
    concat,
    expand_dims,
    fill,
    gather,
    one_hot,
    ones,
    ones_like,
    pack,
    rank,
    reshape,
    shape,
    size,
    split,
    squeeze,
    stack,
    tile,
    transpose,
    unpack,
    unstack,
    zeros,
    zeros_like,
)
from fuseflow.frontend.array_ops import range_ as range  # noqa: F401
from fuseflow.frontend.core_ops import (  # noqa: F401
    constant,
    convert_to_tensor,
    group,
    identity,
    no_op,
    placeholder,
)
from fuseflow.frontend.core_ops import tuple_ as tuple  # noqa: F401
from fuseflow.frontend.gradients import gradients, stop_gradient  # noqa: F401
from fuseflow.frontend.graph import (  # noqa: F401
    Graph,
    Operation,
    Tensor,
    TensorShape,
    control_dependencies,
    device,
    get_default_graph,
    name_scope,
    reset_default_graph,
)
from fuseflow.frontend.math_ops import (  # noqa: F401
    abs,
    add,
    add_n,
    arg_max,
    arg_min,
    argmax,
    argmin,
    cast,
    ceil,
    clip_by_value,
    cos,
    div,
    divide,
    equal,
    exp,
    floor,
    floor_div,
    floordiv,
    floormod,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    matmul,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    pow,
    realdiv,
    reciprocal,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    subtract,
    tanh,
    to_float,
    to_int32,
    truediv,
    where,
)
from fuseflow.frontend.math_ops import multiply as mul  # noqa: F401
from fuseflow.frontend.math_ops import negative as neg  # noqa: F401
from fuseflow.frontend.math_ops import subtract as sub  # noqa: F401
from fuseflow.frontend.random_ops import (  # noqa: F401
    random_normal,
    random_uniform,
    set_random_seed,
    truncated_normal,
)
from fuseflow.frontend.variables import (  # noqa: F401
    GLOBAL_VARIABLES,
    TRAINABLE_VARIABLES,
    Variable,
    all_variables,
    assign,
    assign_add,
    assign_sub,
    global_variables,
    global_variables_initializer,
    initialize_all_variables,
    local_variables_initializer,
    trainable_variables,
    variables_initializer,
)
from fuseflow.ir.dtypes import (  # noqa
    DType,
    as_dtype,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    string,
    uint8,
)
from fuseflow.ir.dtypes import bool_ as bool  # noqa: F401
from fuseflow.jit import jit  # noqa: F401
from fuseflow.session import ConfigProto, InteractiveSession, Session, get_default_session  # noqa: F401
from fuseflow.transforms import grad, jvp, value_and_grad, vjp  # noqa: F401

half, double = float16, float64
newaxis = None
__version__ = "0.1.0"


class GraphKeys:
    GLOBAL_VARIABLES = GLOBAL_VARIABLES
    TRAINABLE_VARIABLES = TRAINABLE_VARIABLES


def disable_eager_execution() -> None:
    """fuseflow always builds graphs; kept so TF1 programs that call it run unchanged."""


def disable_v2_behavior() -> None:
    """fuseflow always has TF1 behaviour; kept so TF1 programs that call it run unchanged."""


class _Compat:
    """``tf.compat.v1``: this module itself."""

    @property
    def v1(self):
        import fuseflow

        return fuseflow


compat = _Compat()
