"""imblearn's own tests (`under_sampling/_prototype_selection/tests/test_random_under_sampler.py`, loaded from the installed package) run against domain_tutor: see upstream_adapter."""
from upstream_adapter import load

# Known differences, by test name (or full parametrised id): marked xfail with the reason.
KNOWN_DIFFERENCES = {
}

globals().update(load("imblearn", "under_sampling/_prototype_selection/tests/test_random_under_sampler.py", "imblearn"))
