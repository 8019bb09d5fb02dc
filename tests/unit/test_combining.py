"""config/combining.py: what threads submit at once under one key runs as one batch; each thread gets
its own outcome, or the batch's error; nobody is left waiting."""

import threading
import time

import pytest

from config.combining import Combiner


class Recorder:
    """A run that records its batches; the first batch waits until `hold` is set."""

    def __init__(self, fail_on: object = None):
        self.batches: list[tuple[object, list[int]]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.fail_on = fail_on

    def __call__(self, key, items):
        self.batches.append((key, list(items)))
        self.hold.wait(5)
        if self.fail_on in items:
            raise RuntimeError(f"batch {list(items)} failed")
        return [item * 10 for item in items]


def waiting_count(combiner: Combiner, key) -> int:
    with combiner._lock:
        return len(combiner._waiting.get(key, []))


def submit_in_threads(combiner, key, items):
    """Each item submitted from a thread of its own; their outcomes (or errors) by item."""
    results: dict[int, object] = {}

    def submit(item):
        try:
            results[item] = combiner.submit(key, item)
        except Exception as exc:  # noqa: BLE001
            results[item] = exc

    threads = [threading.Thread(target=submit, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads, results


def test_without_contention_every_batch_is_one_item():
    run = Recorder()
    combiner = Combiner(run)
    assert [combiner.submit("k", n) for n in (1, 2, 3)] == [10, 20, 30]
    assert run.batches == [("k", [1]), ("k", [2]), ("k", [3])]


def test_who_comes_while_a_batch_runs_is_taken_in_the_next_one():
    run = Recorder()
    run.hold.clear()
    combiner = Combiner(run)
    leader, leader_results = submit_in_threads(combiner, "k", [1])
    while not run.batches:
        time.sleep(0.001)
    threads, results = submit_in_threads(combiner, "k", [2, 3, 4, 5])
    while waiting_count(combiner, "k") < 4:
        time.sleep(0.001)
    run.hold.set()
    for thread in [*leader, *threads]:
        thread.join(5)
    assert leader_results == {1: 10}
    assert results == {2: 20, 3: 30, 4: 40, 5: 50}
    assert [items for _, items in run.batches] == [[1], [2, 3, 4, 5]]  # in the order they came


def test_keys_do_not_wait_for_each_other():
    run = Recorder()
    run.hold.clear()
    combiner = Combiner(run)
    held, _ = submit_in_threads(combiner, "a", [1])
    while not run.batches:
        time.sleep(0.001)
    other, results = submit_in_threads(combiner, "b", [2])
    time.sleep(0.05)
    assert ("b", [2]) in run.batches  # ran while "a" was still running
    run.hold.set()
    for thread in [*held, *other]:
        thread.join(5)
    assert results == {2: 20}


def test_a_batch_s_error_reaches_each_of_its_threads_and_the_next_batch_still_runs():
    run = Recorder(fail_on=3)
    run.hold.clear()
    combiner = Combiner(run)
    leader, leader_results = submit_in_threads(combiner, "k", [1])
    while not run.batches:
        time.sleep(0.001)
    failing, failed = submit_in_threads(combiner, "k", [2, 3])
    while waiting_count(combiner, "k") < 2:
        time.sleep(0.001)
    run.hold.set()
    for thread in [*leader, *failing]:
        thread.join(5)
    assert leader_results == {1: 10}
    assert all(isinstance(failed[item], RuntimeError) for item in (2, 3))
    assert combiner.submit("k", 6) == 60  # nothing left running or waiting
    assert not combiner._running and not combiner._waiting


def test_a_batch_is_at_most_max_batch_items_the_rest_goes_in_the_next():
    run = Recorder()
    run.hold.clear()
    combiner = Combiner(run, max_batch=3)
    leader, _ = submit_in_threads(combiner, "k", [1])
    while not run.batches:
        time.sleep(0.001)
    threads, results = submit_in_threads(combiner, "k", [2, 3, 4, 5, 6])
    while waiting_count(combiner, "k") < 5:
        time.sleep(0.001)
    run.hold.set()
    for thread in [*leader, *threads]:
        thread.join(5)
    assert results == {n: n * 10 for n in (2, 3, 4, 5, 6)}
    sizes = [len(items) for _, items in run.batches]
    assert sizes[0] == 1 and max(sizes) <= 3 and sum(sizes) == 6


def test_a_run_that_answers_for_fewer_items_is_an_error_for_all():
    combiner = Combiner(lambda key, items: [])
    with pytest.raises(AssertionError):
        combiner.submit("k", 1)
    assert not combiner._running
