"""Where a report document goes while it is built: two temporary files, plain JSON and gzip.

Both builders (Python and database) write their pieces here; the pieces are gathered into blocks of
about 256 kB, so that the file writes and the compression are paid per block, not per row. The
gzip stream is made in the same pass as the plain file, so the document is read only once.
"""

from __future__ import annotations

import tempfile
import zlib
from types import TracebackType
from typing import IO

BLOCK_BYTES = 256 * 1024
# zlib level 6 (gzip's default): on report documents (repetitive JSON) it measured no slower than
# level 1 and about 5 % smaller; see docs/architecture.md (Reports).
GZIP_LEVEL = 6


class DocumentOutput:
    """Collects the document's bytes into a plain file and a gzip file, counting both sizes."""

    def __init__(self, *, gzip_level: int = GZIP_LEVEL) -> None:
        # Closed by close() (the object is the context manager).
        self.plain: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.gzip: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        # wbits 31: a gzip member (header and CRC), readable by gunzip and by browsers.
        self._compressor = zlib.compressobj(gzip_level, zlib.DEFLATED, 31)
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
        self.plain.write(block)
        self.plain_bytes += len(block)
        compressed = self._compressor.compress(block)
        self.gzip.write(compressed)
        self.gzip_bytes += len(compressed)

    def finish(self) -> None:
        """Ends both streams and rewinds the files for reading."""
        self._flush_pending()
        tail = self._compressor.flush()
        self.gzip.write(tail)
        self.gzip_bytes += len(tail)
        for file in (self.plain, self.gzip):
            file.flush()
            file.seek(0)

    def close(self) -> None:
        self.plain.close()
        self.gzip.close()

    def __enter__(self) -> DocumentOutput:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
