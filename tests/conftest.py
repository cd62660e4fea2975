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

# Threads: under `pytest -n N` the N workers share the machine's cores.  Each worker gets its share
# (empirics.threads.threads_for reads OMP_NUM_THREADS, so the CLI calls made by tests respect it;
# torch is set here for library calls).  Without this, 2 workers × 2 spinning intra-op threads on
# 2 cores slowed a 25 s test to 600 s (issue 13: oversubscription).
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
if "OMP_NUM_THREADS" not in os.environ:
    from empirics.threads import available_cores

    os.environ["OMP_NUM_THREADS"] = str(max(1, available_cores() // max(1, _workers)))
from empirics.threads import configure_threads  # noqa: E402  (torch and the BLAS pools numpy loaded)

configure_threads()
