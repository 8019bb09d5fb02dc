"""Serving a stored report document: the JSON, or the same document gzip-compressed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from django.http import FileResponse, HttpResponseBase, StreamingHttpResponse

from reports.models import Report
from reports.output import gzip_compressor

JSON_TYPE = "application/json"
GZIP_TYPE = "application/gzip"


def document_response(report: Report, *, gzip: bool = False) -> HttpResponseBase:
    """The plain JSON attachment (as the contract says), or with `gzip` the `.json.gz` file.

    A report built before documents were also stored compressed has no gzip file: it is then
    compressed while it is sent (no Content-Length)."""
    if not gzip:
        return FileResponse(
            report.document.open("rb"), as_attachment=True, filename=report.filename, content_type=JSON_TYPE
        )
    if report.document_gzip:
        return FileResponse(
            report.document_gzip.open("rb"),
            as_attachment=True,
            filename=report.gzip_filename,
            content_type=GZIP_TYPE,
        )
    response = StreamingHttpResponse(_compressed(report.document.open("rb")), content_type=GZIP_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{report.gzip_filename}"'
    return response


def _compressed(file: IO[bytes], block: int = 256 * 1024) -> Iterator[bytes]:
    compressor = gzip_compressor()
    with file:
        while data := file.read(block):
            if out := compressor.compress(data):
                yield out
    yield compressor.flush()
