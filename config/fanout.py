"""In-process fan-out of a state (a seat count) to every local socket that watches it.

A socket that watches a state group costs the channel layer nothing: each process (each event
loop) is one member of the group, whatever its number of sockets, and fans each message out
itself. So a broadcast costs Redis one message per process, not one per socket; a socket that
connects or disconnects touches only this process's memory; a disconnect storm leaves nothing
behind in Redis, and opens no connection (only the last local watcher of a group makes this
process leave it: one command).

States, not events: a newer state replaces an older one that has not been sent yet (the contract
lets seat messages of one event merge, newest wins):
- per group, the first state after a quiet moment is fanned out at once; then the next one
  waits as long as the fan-out took (at least `min_interval`), and what arrives meanwhile is
  merged: fan-outs take at most half of the process's time, however many sockets it serves;
- per socket, at most one send is in flight; a newer state replaces the one waiting behind it,
  so a slow client never makes a queue grow;
- a message says nothing of the order in which the states were committed (two web processes can
  publish in the opposite order), and a channel layer on Redis pub/sub may lose a message while
  it reconnects: `settle_delay` after a fan-out, the group's state is read again (`refresh`, one
  read per process and group) and sent to the sockets that do not have it. So within about a
  second of the last change every socket has the current state;
- a message lost for good (Redis pub/sub delivers at most once: none reaches a process while
  its subscription reconnects) is made up for by reading every watched state again every
  `resync_interval` (one read per process and group).

The messages on the layer: `{"type": "fanout.state", "group": ..., "state": {...}}`, sent by
`config.realtime.broadcast_state`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

MESSAGE_TYPE = "fanout.state"
# A consumer's `channel_layer_alias` for sockets fed by the fan-out: no channel of their own.
NO_CHANNEL_LAYER = "(none: fed by config.fanout)"
# Fan-outs of one group are at least this far apart (seconds); what arrives meanwhile is merged.
MIN_INTERVAL = 0.05
# After a fan-out, the group's state is read again this much later (seconds).
SETTLE_DELAY = 0.3
# Every watched state is read again this often (seconds), whether messages came or not.
RESYNC_INTERVAL = 30.0
# A fan-out waits at most this long for its sends before it counts as done (seconds).
SEND_WAIT = 0.5

State = dict[str, Any]
Refresh = Callable[[], Awaitable[State | None]]


def encode(state: State) -> str:
    """The text frame of a state (the same bytes for every socket, encoded once per fan-out)."""
    return json.dumps(state, default=str)


class Watcher:
    """One socket's mailbox: the newest state not yet sent, and at most one send in flight.

    Until `start` (the socket's initial message is sent) states are kept, not sent: a socket's
    first message is the state it read after joining.
    """

    __slots__ = ("_send", "_task", "pending", "started", "state")

    def __init__(self, send: Callable[[str], Awaitable[None]]) -> None:
        self._send = send
        self._task: asyncio.Task[None] | None = None
        self.pending: str | None = None  # text waiting to be sent
        self.state: State | None = None  # the newest state this socket has or is about to get
        self.started = False

    def offer(self, state: State, text: str) -> asyncio.Task[None] | None:
        """Sends `text` once the send in flight (if any) is done; returns the send it started."""
        self.state, self.pending = state, text
        if self.started and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())
            return self._task
        return None

    async def start(self, state: State) -> None:
        """Sends the initial state, then whatever arrived meanwhile (newer, or re-read later)."""
        if self.state is None:
            self.state = state
        await self._send(encode(state))
        self.started = True
        if self.pending is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    def stop(self) -> None:
        self.started = False
        self.pending = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _flush(self) -> None:
        try:
            while self.pending is not None:
                text, self.pending = self.pending, None
                await self._send(text)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the socket is closing; its consumer removes it
            self.pending = None
            log.debug("send to a closing socket failed", exc_info=True)
        finally:
            self._task = None


class _Group:
    __slots__ = ("latest", "pump", "received", "refresh", "settling", "watchers")

    def __init__(self, refresh: Refresh | None) -> None:
        self.watchers: set[Watcher] = set()
        self.refresh = refresh
        self.latest: State | None = None  # received, not fanned out yet
        self.received = 0  # messages received: a re-read that overlaps one is not trusted
        self.pump: asyncio.Task[None] | None = None
        self.settling: asyncio.TimerHandle | asyncio.Task[None] | None = None

    def cancel(self) -> None:
        for pending in (self.pump, self.settling):
            if pending is not None:
                pending.cancel()
        self.pump = self.settling = None


class FanoutHub:
    """The fan-out of one event loop: one channel of the layer, a member of each watched group."""

    def __init__(
        self,
        layer: Any,
        *,
        min_interval: float = MIN_INTERVAL,
        settle_delay: float = SETTLE_DELAY,
        resync_interval: float = RESYNC_INTERVAL,
    ):
        self.layer = layer
        self.min_interval = min_interval
        self.settle_delay = settle_delay
        self.resync_interval = resync_interval
        self.groups: dict[str, _Group] = {}
        self.joined: set[str] = set()  # groups this hub's channel is a member of
        self.channel: str | None = None
        self.receiver: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # membership changes on the layer, one at a time

    # --- Sockets ---------------------------------------------------------------------------------

    async def join(self, group: str, watcher: Watcher, refresh: Refresh | None = None) -> None:
        """Registers the socket; returns once this process receives the group's messages."""
        entry = self.groups.get(group)
        if entry is None:
            entry = self.groups[group] = _Group(refresh)
            self._reread_in(group, entry, self.resync_interval)
        entry.watchers.add(watcher)
        if group in self.joined:
            return
        try:
            async with self.lock:
                if group not in self.joined and group in self.groups:
                    if self.channel is None:
                        self.channel = await self.layer.new_channel()
                        self.receiver = asyncio.get_running_loop().create_task(self._receive(self.channel))
                    await self.layer.group_add(group, self.channel)
                    self.joined.add(group)
        except BaseException:
            await self.leave(group, watcher)
            raise

    async def leave(self, group: str, watcher: Watcher) -> None:
        """Unregisters the socket; the last one of the group takes this process out of it."""
        watcher.stop()
        entry = self.groups.get(group)
        if entry is None:
            return
        entry.watchers.discard(watcher)
        if entry.watchers:
            return
        entry.cancel()
        del self.groups[group]
        # In a task of the hub: a consumer cancelled now must not leave the membership behind.
        await asyncio.shield(asyncio.get_running_loop().create_task(self._release(group)))

    async def _release(self, group: str) -> None:
        async with self.lock:
            if group in self.groups or group not in self.joined:
                return  # watched again meanwhile, or never joined
            self.joined.discard(group)  # first: a socket joining now waits for the lock, then re-adds
            try:
                if self.channel is not None:
                    await self.layer.group_discard(group, self.channel)
            except Exception:  # noqa: BLE001
                log.warning("leaving channel-layer group %s failed", group, exc_info=True)
            if not self.joined and self.receiver is not None:
                self.receiver.cancel()
                await asyncio.wait([self.receiver])  # never raises: our own cancellation still does
                self.receiver = self.channel = None

    # --- Messages --------------------------------------------------------------------------------

    async def _receive(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the layer recovers (reconnects); so do we
                log.warning("receiving from the channel layer failed", exc_info=True)
                await asyncio.sleep(1)
                continue
            if message.get("type") == MESSAGE_TYPE:
                self.deliver(message["group"], message["state"])

    def deliver(self, group: str, state: State) -> None:
        """A state received for `group`: fanned out now, or merged into the next fan-out."""
        entry = self.groups.get(group)
        if entry is None:
            return
        entry.latest = state
        entry.received += 1
        if entry.pump is None:
            entry.pump = asyncio.get_running_loop().create_task(self._pump(group, entry))

    async def _pump(self, group: str, entry: _Group) -> None:
        """Fans the newest state out, then rests as long as that took (at least `min_interval`):
        whatever arrives meanwhile is merged, and fan-outs take at most half of the loop's time,
        however many sockets there are."""
        try:
            while entry.latest is not None:
                started = time.monotonic()
                state, entry.latest = entry.latest, None
                text = encode(state)
                sends = [send for watcher in entry.watchers if (send := watcher.offer(state, text))]
                if sends:
                    # Not for ever: a client that does not read must not hold up the others.
                    await asyncio.wait(sends, timeout=SEND_WAIT)
                    log.debug(
                        "%s: fan-out to %d sockets in %.0f ms",
                        group,
                        len(sends),
                        (time.monotonic() - started) * 1000,
                    )
                self._reread_in(group, entry, self.settle_delay)
                await asyncio.sleep(max(self.min_interval, time.monotonic() - started))
        finally:
            if entry.pump is asyncio.current_task():
                entry.pump = None

    def _reread_in(self, group: str, entry: _Group, delay: float) -> None:
        """Reads the group's state again `delay` from now, unless a re-read comes sooner (one
        running re-arms itself when it ends)."""
        if entry.refresh is None or isinstance(entry.settling, asyncio.Task):
            return
        loop = asyncio.get_running_loop()
        if entry.settling is not None:
            if entry.settling.when() <= loop.time() + delay:
                return
            entry.settling.cancel()
        entry.settling = loop.call_later(delay, self._settle, group)

    def _settle(self, group: str) -> None:
        entry = self.groups.get(group)
        if entry is not None:
            entry.settling = asyncio.get_running_loop().create_task(self._reread(group, entry))

    async def _reread(self, group: str, entry: _Group) -> None:
        received = entry.received
        try:
            assert entry.refresh is not None
            state = await entry.refresh()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.warning("re-reading the state of %s failed", group, exc_info=True)
            state = None
        if self.groups.get(group) is not entry:
            return  # nobody watches any more (the task was cancelled, or is finishing)
        entry.settling = None
        if entry.received != received or entry.latest is not None:
            # A message came while reading: which of the two is newer is unknown. Read again soon.
            self._reread_in(group, entry, self.settle_delay)
            return
        self._reread_in(group, entry, self.resync_interval)
        if state is None:
            return
        text = encode(state)
        for watcher in entry.watchers:
            if watcher.started and watcher.state != state:
                watcher.offer(state, text)

    # --- Introspection (tests, benchmarks) -------------------------------------------------------

    def watchers(self, group: str) -> int:
        entry = self.groups.get(group)
        return len(entry.watchers) if entry else 0


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FanoutHub] = weakref.WeakKeyDictionary()


def hub() -> FanoutHub:
    """The fan-out of the running event loop (in a server: of the process), on the default layer."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        layer = get_channel_layer()
        if layer is None:
            raise RuntimeError("live updates need a channel layer (CHANNEL_LAYERS)")
        found = _hubs[loop] = FanoutHub(layer)
    return found


def state_message(group: str, state: State) -> dict[str, Any]:
    return {"type": MESSAGE_TYPE, "group": group, "state": state}
