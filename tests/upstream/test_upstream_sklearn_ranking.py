"""sklearn's own tests (`metrics/tests/test_ranking.py`, loaded from the installed package) run against domain_tutor: see upstream_adapter."""
from upstream_adapter import load

# Known differences, by test name (or full parametrised id): marked xfail with the reason.
KNOWN_DIFFERENCES = {
}

globals().update(load("sklearn", "metrics/tests/test_ranking.py", "sklearn.metrics"))
