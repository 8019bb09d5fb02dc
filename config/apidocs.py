"""ReDoc served entirely from this server.

drf-spectacular's ReDoc page links Google Fonts, and the ReDoc bundle shows Redocly's logo from
their CDN: on an offline network (an internal deployment) both requests fail, and the page waits
for them. Here the page loads no font from anywhere, and the bundle is the bundled one with its
single outside address (the logo) replaced by an inline image.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import drf_spectacular_sidecar
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

BUNDLE = (
    Path(drf_spectacular_sidecar.__file__).parent
    / "static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
)
OUTSIDE_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
# A small grey square in place of the logo.
INLINE_LOGO = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='16' height='16'%3E"
    "%3Crect width='16' height='16' rx='3' fill='%23a0a0a0'/%3E%3C/svg%3E"
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head><body>
<div id="redoc-container"></div>
<script src="{bundle}"></script>
<script>
Redoc.init({schema}, {options}, document.getElementById("redoc-container"));
</script>
</body></html>
"""

# ReDoc's own fonts are web fonts from the internet by default: the system's fonts instead.
OPTIONS = {
    "theme": {
        "typography": {
            "fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
            "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"},
            "code": {"fontFamily": "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"},
        }
    },
    "hideDownloadButton": False,
    "expandResponses": "200,201,202",
}


@functools.cache
def _offline_bundle() -> bytes:
    text = BUNDLE.read_text(encoding="utf-8")
    if OUTSIDE_LOGO not in text:  # a new ReDoc: check what it loads before serving it
        raise RuntimeError(f"{BUNDLE} no longer holds {OUTSIDE_LOGO}: review its outside requests")
    return text.replace(OUTSIDE_LOGO, INLINE_LOGO).encode("utf-8")


@require_GET
def redoc_page(request: HttpRequest) -> HttpResponse:
    title = str(settings.SPECTACULAR_SETTINGS["TITLE"])
    html = PAGE.format(
        title=title,
        bundle=reverse("redoc-bundle"),
        schema=json.dumps(reverse("schema")),
        options=json.dumps(OPTIONS),
    )
    return HttpResponse(html)


@require_GET
def redoc_bundle(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(_offline_bundle(), content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response
