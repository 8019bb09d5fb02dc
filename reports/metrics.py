from prometheus_client import Histogram

BUILD_DURATION = Histogram(
    "reports_build_duration_seconds",
    "Time to build and store one participant report.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
