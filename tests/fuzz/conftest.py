"""Hypothesis profiles of the fuzz suite, and the `fuzz` marker on every test here.

`ci` (the default, what `make test` and CI run) keeps the whole suite to tens of seconds on two
cores; `long` (`make fuzz`: `--hypothesis-profile=long`, or OUTCROP_FUZZ_PROFILE=long) runs
about a hundred times more examples for a human who wants to look harder. Deadlines are off:
a slow example on a loaded machine is not a failure (the invariant's own hang guard is
`harness.HANG_S`).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
    print_blob=True,
    # CI draws the same examples every run, so a red run is reproducible and never a dice roll;
    # `long` explores new ones.
    derandomize=True,
)
settings.register_profile("long", settings.get_profile("ci"), max_examples=5000, derandomize=False)
if settings.get_current_profile_name() == "default":  # unless --hypothesis-profile chose one
    settings.load_profile(os.environ.get("OUTCROP_FUZZ_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.fuzz)
