from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination as _PageNumberPagination
from rest_framework.request import Request


class PageNumberPagination(_PageNumberPagination):
    """`?page=N&page_size=M`: 20 a page by default, 100 at most. A page or size that is not a
    whole number from 1 up is a 400 (a page past the last one is a 404)."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return min(_positive(raw, self.page_size_query_param), self.max_page_size)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and raw not in self.last_page_strings:
            _positive(raw, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)


def _positive(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or not raw.strip().isdigit():
        raise ValidationError({name: ["Must be a whole number, 1 or more."]})
    return value
