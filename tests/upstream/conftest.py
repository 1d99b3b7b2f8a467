"Fixtures the upstream test files expect from their own conftest.py (scikit-learn's defaults), and the xfail lists."
import numpy as np
import pytest


@pytest.fixture
def global_random_seed():
    return 42                                   # scikit-learn's default without SKLEARN_TESTS_GLOBAL_RANDOM_SEED


@pytest.fixture
def global_dtype():
    return np.float64                           # float32 runs only with SKLEARN_RUN_FLOAT32_TESTS=1 upstream


def pytest_configure(config):
    for mark in ("thread_unsafe", "parallel_threads"):     # markers of scikit-learn's own pytest plugins
        config.addinivalue_line("markers", f"{mark}: upstream marker (no effect here)")


def pytest_collection_modifyitems(config, items):
    import sys
    from upstream_adapter import mark_known
    for name, mod in list(sys.modules.items()):
        known = getattr(mod, "KNOWN_DIFFERENCES", None)
        if name.startswith("test_upstream_") and isinstance(known, dict):
            mark_known(items, known, name + ".py")
