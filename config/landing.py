"""The root address: a small page pointing people to the API docs and the admin."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; padding: 0 1rem;
  color: #1f2933; }}
h1 {{ font-size: 1.6rem; margin-bottom: .25rem; }} p.lead {{ color: #52606d; margin-top: 0; }}
ul {{ list-style: none; padding: 0; }} li {{ margin: .75rem 0; }}
a {{ color: #0b6bcb; font-weight: 600; text-decoration: none; }} a:hover {{ text-decoration: underline; }}
span {{ display: block; color: #52606d; font-size: .9rem; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="lead">Company events: enrollment with live seat counts, waiting lists, reports.</p>
<ul>
<li><a href="/api/docs/">API documentation</a><span>Swagger UI: try every route with your token</span></li>
<li><a href="/api/redoc/">API reference</a><span>ReDoc, the same schema as a document</span></li>
<li><a href="/admin/">Administration</a>
<span>events, participants, waiting lists, reports (admins)</span></li>
<li><a href="/api/schema/">OpenAPI schema</a><span>for client generators</span></li>
</ul>
</body></html>
"""


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    title = str(settings.SPECTACULAR_SETTINGS["TITLE"]).removesuffix(" API")
    return HttpResponse(PAGE.format(title=title))
