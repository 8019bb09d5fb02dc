from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from events.models import Event


class _GivenDateField(forms.DateField):
    """A date parameter that is given must be a date: `?date_to=` is refused, not ignored."""

    def to_python(self, value: Any) -> Any:
        if value == "":
            raise forms.ValidationError("Enter a valid date.", code="invalid")
        return super().to_python(value)


class GivenDateFilter(django_filters.DateFilter):
    field_class = _GivenDateField


class EventFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search", help_text="Words in title, description or location."
    )
    date_from = GivenDateFilter(field_name="date", lookup_expr="gte")
    date_to = GivenDateFilter(field_name="date", lookup_expr="lte")
    ordering = django_filters.OrderingFilter(
        fields=(("date", "date"), ("title", "title")),
        help_text="date (default), -date, title or -title.",
    )

    class Meta:
        model = Event
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        for word in value.split():
            queryset = queryset.filter(
                Q(title__icontains=word) | Q(description__icontains=word) | Q(location__icontains=word)
            )
        return queryset

    @property
    def qs(self) -> QuerySet[Event]:
        queryset = super().qs
        ordering = list(queryset.query.order_by)
        if not ordering:
            return queryset.order_by(*DEFAULT_ORDER)
        # Ties go by start time (the same way as the date), then id: a stable page order.
        start_time = "-time" if ordering[0] == "-date" else "time"
        return queryset.order_by(*ordering, start_time, "id")


# The list's order without `?ordering=`: soonest first, then id (a stable page order).
DEFAULT_ORDER = ("date", "time", "id")
