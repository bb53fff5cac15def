"""``tf.nn``."""

from fuseflow.frontend.nn import (  # noqa: F401
    bias_add,
    dropout,
    elu,
    l2_loss,
    log_softmax,
    relu,
    relu6,
    sigmoid,
    softmax,
    softmax_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
    sparse_softmax_cross_entropy_with_logits,
    tanh,
)
