"""Shared test configuration.

Hypothesis profiles: ``ci`` (default, small budgets so the whole suite stays
within minutes on 2 cores) and ``full`` (select with KITEMU_PROFILE=full for
long property runs).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("full", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("KITEMU_PROFILE", "ci"))
