import os

import pytest

os.environ.setdefault("FUSEFLOW_VERIFY", "1")  # verify the IR after every pass in tests

import fuseflow as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    """Every test starts from an empty default graph."""
    tf.reset_default_graph()
    yield
