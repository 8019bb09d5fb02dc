"""One background thread per process, made when first needed and made again in a forked child
(threads do not survive fork). The outbox publisher, the admission waker and the broadcaster are
such threads."""

from __future__ import annotations

import os
import threading
from typing import ClassVar, Self


class ProcessThread:
    """Subclasses set their state, then call `super().__init__()`, which starts `_run`."""

    thread_name: ClassVar[str]
    _instance: ClassVar[ProcessThread | None] = None  # redeclared by each subclass
    _lock = threading.Lock()

    @classmethod
    def instance(cls) -> Self:
        with ProcessThread._lock:
            current = cls._instance
            if current is None or current.pid != os.getpid():
                current = cls._instance = cls()
            return current  # type: ignore[return-value]

    @classmethod
    def running_here(cls) -> Self | None:
        """This process's instance, or None when none was made here."""
        current = cls._instance
        return current if current is not None and current.pid == os.getpid() else None  # type: ignore[return-value]

    def __init__(self) -> None:
        self.pid = os.getpid()
        threading.Thread(target=self._run, name=self.thread_name, daemon=True).start()

    def _run(self) -> None:
        raise NotImplementedError
