import os
import shutil
import tempfile

import pytest

os.environ.setdefault("FUSEFLOW_VERIFY", "1")  # verify the IR after every pass in tests

# The kernel disk cache of the tests: one temporary directory for the whole session, removed at
# its end. The suite then exercises the cache (subprocess tests load what others wrote) but never
# depends on, nor fills, the user's cache, and every run starts cold. FUSEFLOW_TEST_CACHE_DIR keeps
# a directory across runs instead: a second run then loads every kernel of the suite from disk.
_TEST_CACHE = os.environ.get("FUSEFLOW_TEST_CACHE_DIR") or tempfile.mkdtemp(prefix="fuseflow-test-cache-")
os.environ["FUSEFLOW_CACHE_DIR"] = _TEST_CACHE

import fuseflow as tf


@pytest.fixture(autouse=True)
def fresh_graph():
    """Every test starts from an empty default graph."""
    tf.reset_default_graph()
    yield


def pytest_sessionfinish(session, exitstatus):
    if not os.environ.get("FUSEFLOW_TEST_CACHE_DIR"):
        shutil.rmtree(_TEST_CACHE, ignore_errors=True)
