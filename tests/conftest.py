import os

from hypothesis import HealthCheck, settings

# Default profile: >= 200 examples per property (issue requirement), no deadline (first calls
# pay import/JIT costs).  `HYPOTHESIS_PROFILE=dev` runs fewer for quick local iteration.
settings.register_profile(
    "default", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Headless plotting everywhere in the tests.
os.environ.setdefault("MPLBACKEND", "Agg")
