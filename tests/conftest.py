import pytest

import fuseflow as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    """Every test starts from an empty default graph."""
    tf.reset_default_graph()
    yield
