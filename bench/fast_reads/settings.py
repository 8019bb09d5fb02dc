from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.fast_reads.urls"
