"""Flat combining: the same kind of work, asked for by several threads of a process at once, done
once for all of them.

A rush's requests each pay for a round trip to the database and a commit (and more round trips
after it) whose cost hardly depends on how many rows they carry (docs/architecture.md, "Direct
enrollment"). `Combiner.submit(key, item)` runs `run(key, items)` for the items submitted under the
same key meanwhile: the first thread to arrive leads, and runs its own item alone (`run` gets a batch
of one); whoever arrives while a batch of that key is running waits, and the next leader, the first
of them, takes all the waiting items as one batch. Nothing waits on purpose: under no load every
batch is one item, and batches grow with the load by themselves, up to `max_batch`.

`run` returns one outcome per item, in order, and every submitter gets its own. An exception from
`run` is raised in every thread of that batch. The leader releases the batch's other threads and
hands the lead on in `finally`: nobody is left waiting, whatever happens to it.

Only threads of one process combine. Under a server of sync workers (one request at a time per
process) every batch is one item.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class _Ticket(Generic[Item]):
    __slots__ = ("item", "done", "leads", "outcome", "error")

    def __init__(self, item: Item):
        self.item = item
        self.done = threading.Event()
        self.leads = False
        self.outcome: Any = None
        self.error: BaseException | None = None


class Combiner(Generic[Item, Outcome]):
    def __init__(self, run: Callable[[Hashable, Sequence[Item]], Sequence[Outcome]], *, max_batch: int = 64):
        self._run = run
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: dict[Hashable, list[_Ticket[Item]]] = {}
        self._running: set[Hashable] = set()

    def submit(self, key: Hashable, item: Item) -> Outcome:
        """`run`'s outcome for `item`, run alone or with the items submitted under `key` meanwhile."""
        ticket: _Ticket[Item] = _Ticket(item)
        with self._lock:
            if key in self._running:
                self._waiting.setdefault(key, []).append(ticket)
            else:
                self._running.add(key)
                ticket.leads = True
        if not ticket.leads:
            ticket.done.wait()
            if not ticket.leads:  # a leader ran it
                if ticket.error is not None:
                    raise ticket.error
                return ticket.outcome  # type: ignore[no-any-return]
        return self._lead(key, ticket)

    def _lead(self, key: Hashable, ticket: _Ticket[Item]) -> Outcome:
        with self._lock:
            waiting = self._waiting.pop(key, [])
            batch, rest = [ticket, *waiting][: self._max_batch], waiting[self._max_batch - 1 :]
            if rest:
                self._waiting[key] = rest
        try:
            outcomes = self._run(key, [t.item for t in batch])
            if len(outcomes) != len(batch):
                raise AssertionError(f"{len(outcomes)} outcomes for {len(batch)} items")
            for other, outcome in zip(batch, outcomes, strict=True):
                other.outcome = outcome
        except BaseException as exc:
            for other in batch:
                other.error = exc
            raise
        finally:
            with self._lock:
                queue = self._waiting.get(key)
                successor = queue.pop(0) if queue else None
                if successor is not None:
                    successor.leads = True
                    if not queue:
                        del self._waiting[key]
                else:
                    self._running.discard(key)
            for other in batch[1:]:
                other.done.set()
            if successor is not None:
                successor.done.set()
        return ticket.outcome  # type: ignore[no-any-return]
