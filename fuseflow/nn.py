"""``tf.nn``."""

from fuseflow.frontend.nn import bias_add, elu, log_softmax, relu, relu6, sigmoid, softmax, tanh  # noqa: F401
