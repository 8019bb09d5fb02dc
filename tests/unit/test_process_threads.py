"""Background threads per process (config.process_threads): a forked child makes its own."""

import os

from config import realtime


def test_a_forked_child_makes_its_own_broadcaster(monkeypatch):
    """gunicorn forks its workers: a broadcaster made before the fork has no thread in the child
    (its loop would take messages and never send them), so the child must make a new one."""
    parent = realtime._Broadcaster.instance()
    assert realtime._Broadcaster.instance() is parent  # one per process
    monkeypatch.setattr(os, "getpid", lambda: parent.pid + 1)  # as seen from a forked child
    child = realtime._Broadcaster.instance()
    assert child is not parent
    assert child.pid == parent.pid + 1
    assert realtime._Broadcaster.instance() is child
