"""Inline lists of the admin's pages, shared by the apps' admins: rows without their object's label,
and long lists shown a page at a time."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms.formsets import DELETION_FIELD_NAME
from django.http import HttpRequest, QueryDict

# Inline rows without the object's own label (an enrollment's str() is "2 @ 1"): the columns say
# who and when (config/templates/admin/edit_inline/tabular_rows.html), and a paged list's pager
# stands above them.
ROWS_TEMPLATE = "admin/edit_inline/tabular_rows.html"


class PagedRowsFormSet(forms.BaseInlineFormSet):
    """An inline's existing rows, one page at a time: an event of 5,000 seats and 4,500 waiting
    made a page of 11 MB that took 10 s to build, and as much to post back (paged: 273 kB, 0.4 s).
    The page comes from the request's query (`page_parameter`, set per request by
    `PagedRowsInline`); a page number that is not one gives the first page, one past the end the
    last (Django's paginator). A save acts on the rows the form showed, by their ids, wherever
    they are now: the page counted again may hold others (someone before them left meanwhile)."""

    page_size = 100
    page_parameter = "page"
    query = QueryDict()

    def get_queryset(self) -> Any:
        if not hasattr(self, "_rows"):
            rows = super().get_queryset()
            self._page = Paginator(rows, self.page_size).get_page(self.query.get(self.page_parameter))
            # (The same queryset object each time: evaluated once.)
            self._rows = rows.filter(pk__in=self._posted_ids()) if self.is_bound else self._page.object_list
        if self.is_bound and "forms" in self.__dict__:
            # The forms are built, and Django's admin is asking which row each one shows: it pairs
            # them by position (InlineAdminFormSet), so a row gone meanwhile would shift the rest
            # and drop the last form from the page. Each posted form's row is its own instance,
            # found by its id, or none once the row is gone.
            return [None if form.instance._state.adding else form.instance for form in self.initial_forms]
        return self._rows

    def clean(self) -> None:
        super().clean()
        primary_key = self.model._meta.pk.name
        # (A gone row ticked for removal is what the form asked for: Django's validation leaves
        # it out, and the save finds nothing to remove.)
        gone = [
            form
            for form in self.initial_forms
            if primary_key in form.errors and not form.cleaned_data.get(DELETION_FIELD_NAME)
        ]
        for form in gone:
            # Django's error sits on the row's hidden id, which the page does not show.
            form.add_error(None, "This row left the list while the page was open.")
        if gone:
            raise ValidationError(
                "Some of these rows changed or left the list while this page was open: reload the "
                "page and make the change again."
            )

    def _posted_ids(self) -> list[Any]:
        """The ids of the rows the posted form showed (only ids of this inline's own rows can
        match: the rows are its object's)."""
        primary_key, ids = self.model._meta.pk, []
        # (As many as the formset makes forms: Django bounds the total, not INITIAL_FORMS.)
        for index in range(min(self.initial_form_count(), self.total_form_count())):
            posted = self.data.get(f"{self.add_prefix(index)}-{primary_key.name}")
            if posted in primary_key.empty_values:
                continue
            try:
                # clean(): the field's range too (20 digits overflowed SQLite's integers: a 500).
                ids.append(primary_key.clean(posted, None))
            except ValidationError:
                continue  # a tampered id: its form says so
        return ids

    @property
    def pager(self) -> dict[str, Any] | None:
        """What the rows' template shows above them ("101–200 of 5,000", the neighbours' links),
        or None when the rows fit on one page."""
        self.get_queryset()
        page = self._page
        if page.paginator.num_pages == 1:
            return None
        return {
            "first": page.start_index(),
            "last": page.end_index(),
            "total": page.paginator.count,
            "previous": self._link(page.previous_page_number()) if page.has_previous() else "",
            "next": self._link(page.next_page_number()) if page.has_next() else "",
        }

    def _link(self, number: int) -> str:
        query = self.query.copy()
        query[self.page_parameter] = str(number)
        return f"?{query.urlencode()}"


class PagedRowsInline(admin.TabularInline):
    """An inline of existing rows shown a page at a time (PagedRowsFormSet), paged by its own
    query parameter so that two such lists on one page page independently."""

    formset = PagedRowsFormSet
    template = ROWS_TEMPLATE
    page_parameter = "page"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        return type(
            formset.__name__, (formset,), {"query": request.GET, "page_parameter": self.page_parameter}
        )
