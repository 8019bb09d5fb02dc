"""Running wrk with bench/wrk_scenario.lua or bench/wrk_burst.lua (their shared part:
bench/wrk_common.lua) and reading their figures (shared by the HTTP benchmarks)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import REPO, BenchError, say

WRK_SCRIPT = REPO / "bench" / "wrk_scenario.lua"
BURST_SCRIPT = REPO / "bench" / "wrk_burst.lua"
MARKER = "BENCH_RESULT "


def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get (refreshing the package lists if needed) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say("wrk is not installed: installing it with apt-get")
    install = [*sudo, "apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        say("apt-get install failed: refreshing the package lists and trying again")
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is missing and could not be installed; install it (apt-get install wrk)")
    return found


def wrk_version(wrk: str) -> str:
    # `wrk -v` prints its version and usage, then exits non-zero.
    output = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    return output.splitlines()[0].split(" Copyright")[0].strip() if output else "?"


@dataclass
class WrkRun:
    """One wrk run, as wrk_scenario.lua reports it."""

    duration_s: float
    requests: int  # responses received
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    socket_errors: dict[str, int]  # connect, read, write, timeout
    issued: int  # requests handed out (the responses plus those cut off when wrk stopped)
    exhausted: int  # token-pool scenario: requests that found no unused token left

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @property
    def unanswered(self) -> int:
        return self.issued - self.requests

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


def wrk_command(
    wrk: str,
    threads: int,
    connections: int,
    url: str,
    seconds: int,
    script_args: list[str],
    script: Path = WRK_SCRIPT,
) -> list[str]:
    return [
        wrk,
        "--threads",
        str(threads),
        "--connections",
        str(connections),
        "--duration",
        f"{seconds}s",
        # Slow answers must be measured, not dropped: wrk leaves answers past its timeout out of the
        # latency figures.
        "--timeout",
        "30s",
        "--script",
        str(script),
        url,
        "--",
        *script_args,
    ]


def parse_wrk_output(returncode: int, stdout: str, stderr: str) -> WrkRun:
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if returncode != 0 or not lines:
        raise BenchError(f"wrk failed (code {returncode}):\n{stdout}\n{stderr}".strip())
    data = json.loads(lines[-1][len(MARKER) :])
    latency = data["latency_us"]
    errors = data["errors"]
    return WrkRun(
        duration_s=data["duration_us"] / 1e6,
        requests=int(data["requests"]),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses={int(status): int(count) for status, count in data["statuses"].items()},
        socket_errors={kind: int(errors[kind]) for kind in ("connect", "read", "write", "timeout")},
        issued=int(data["issued"]),
        exhausted=int(data["exhausted"]),
    )


def run_wrk(
    wrk: str, threads: int, connections: int, url: str, seconds: int, script_args: list[str]
) -> WrkRun:
    command = wrk_command(wrk, threads, connections, url, seconds, script_args)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    return parse_wrk_output(completed.returncode, completed.stdout, completed.stderr)


def run_wrk_until(
    wrk: str,
    threads: int,
    connections: int,
    url: str,
    script_args: list[str],
    *,
    done: Callable[[], bool],
    timeout: float,
    poll: float = 0.05,
    script: Path = WRK_SCRIPT,
) -> WrkRun:
    """Runs wrk until `done()` (polled every `poll` s) is true or `timeout` passes, then stops it.

    wrk waits for its whole --duration even when every thread has stopped; SIGINT ends the wait
    and it still prints its figures (the duration it reports is then the time until the SIGINT).
    """
    command = wrk_command(wrk, threads, connections, url, int(timeout) + 1, script_args, script)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline and not done():
            time.sleep(poll)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    return parse_wrk_output(process.returncode, stdout, stderr)
