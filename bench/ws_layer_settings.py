"""config.settings with the channel-layer backend named by WS_BENCH_LAYER (bench/ws_bench.py --layer).

Only for comparing backends in the benchmark; everything else is config/settings.py as deployed.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import CHANNEL_LAYERS

CHANNEL_LAYERS["default"]["BACKEND"] = os.environ["WS_BENCH_LAYER"]
