"""Where a report document goes while it is built: two temporary files, plain JSON and gzip.

Both builders (Python and database) write their pieces here; the pieces are gathered into blocks of
about 256 kB, so that the file writes and the compression are paid per block, not per row. The
gzip stream is made in the same pass as the plain file, so the document is read only once, and in
a thread of its own: zlib lets go of the GIL while it compresses, so on a second core the
compression overlaps with reading the rows. A bounded queue between the two keeps memory flat.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import zlib
from types import TracebackType
from typing import IO, Any

BLOCK_BYTES = 256 * 1024
# zlib level 6 (gzip's default): on report documents (repetitive JSON) it measured no slower than
# level 1 and about 5 % smaller; see docs/architecture.md (Reports).
GZIP_LEVEL = 6
# Blocks waiting for the compressor at most (memory: QUEUE_BLOCKS x BLOCK_BYTES).
QUEUE_BLOCKS = 16


def gzip_compressor(level: int = GZIP_LEVEL) -> Any:
    """A zlib compressor writing one gzip member (wbits 31: header and CRC, as gunzip and browsers
    read it)."""
    return zlib.compressobj(level, zlib.DEFLATED, 31)


class _Compressor(threading.Thread):
    """Compresses the blocks it is given into a file, in order, until it is given None."""

    def __init__(self, file: IO[bytes], level: int) -> None:
        super().__init__(name="report-gzip", daemon=True)
        self.blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self.file = file
        self.written = 0
        self.error: BaseException | None = None
        self._compressor = gzip_compressor(level)

    def run(self) -> None:
        try:
            while (block := self.blocks.get()) is not None:
                self._write(self._compressor.compress(block))
            self._write(self._compressor.flush())
        except BaseException as exc:  # handed to the writing thread, which raises it
            self.error = exc
            while self.blocks.get() is not None:  # never leave the writer blocked on a full queue
                pass

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.written += len(data)


class DocumentOutput:
    """Collects the document's bytes into a plain file and a gzip file, counting both sizes."""

    def __init__(self, *, gzip_level: int = GZIP_LEVEL) -> None:
        # Closed by close() (the object is the context manager).
        self.plain: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.gzip: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._compressor = _Compressor(self.gzip, gzip_level)
        self._compressor.start()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.plain_bytes = 0
        self.gzip_bytes = 0

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= BLOCK_BYTES:
            self._flush_pending()

    def write_text(self, text: str) -> None:
        self.write(text.encode())

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        block = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self._raise_compression_error()
        self._compressor.blocks.put(block)
        self.plain.write(block)
        self.plain_bytes += len(block)

    def _raise_compression_error(self) -> None:
        if self._compressor.error is not None:
            raise self._compressor.error

    def _stop_compressor(self) -> None:
        if self._compressor.is_alive():
            self._compressor.blocks.put(None)
            self._compressor.join()

    def finish(self) -> None:
        """Ends both streams and rewinds the files for reading."""
        self._flush_pending()
        self._stop_compressor()
        self._raise_compression_error()
        self.gzip_bytes = self._compressor.written
        for file in (self.plain, self.gzip):
            file.flush()
            file.seek(0)

    def close(self) -> None:
        self._stop_compressor()
        self.plain.close()
        self.gzip.close()

    def __enter__(self) -> DocumentOutput:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
