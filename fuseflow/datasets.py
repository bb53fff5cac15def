"""``tf.datasets``-style loaders: scikit-learn's digits and MNIST IDX files, behind the tutorial interface."""

from fuseflow.frontend.datasets import (  # noqa: F401
    DataSet,
    Datasets,
    dense_to_one_hot,
    load_digits,
    read_data_sets,
)
