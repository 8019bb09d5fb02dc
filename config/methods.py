"""Methods no route serves answer 405 before any view, authentication or permission runs."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from config.problems import problem_response

# Everything the API and the admin serve; TRACE, CONNECT and inventions are never served.
SERVED_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")


class UnservedMethodMiddleware:
    """A TRACE used to reach the view, whose permission check answered a participant 403 and so
    told them the route exists and is guarded; the method is what is wrong, whoever asks."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in SERVED_METHODS:
            return self.get_response(request)
        return problem_response(405, headers={"Allow": ", ".join(_allowed(request.path_info))})


def _allowed(path: str) -> list[str]:
    """The methods the route's view names (DRF views list theirs), else every served one."""
    try:
        view = resolve(path).func
    except Resolver404:
        return list(SERVED_METHODS)
    cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
    names = getattr(cls, "http_method_names", None) or [m.lower() for m in SERVED_METHODS]
    actions = getattr(view, "actions", None)  # a viewset's route serves its mapped actions only
    if actions:
        names = [*actions, "options"]
    allowed = [
        m.upper()
        for m in names
        if m.upper() in SERVED_METHODS and (actions or hasattr(cls, m) or cls is None)
    ]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.append("HEAD")
    return allowed or list(SERVED_METHODS)
