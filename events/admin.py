from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import display_for_value
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import RegexValidator
from django.db.models import Count, F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce, NullIf
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.utils.html import format_html

from config.admin_rows import ROWS_TEMPLATE, PagedRowsFormSet, PagedRowsInline
from config.errors import DomainError
from events import dashboard, domain, services
from events.models import Enrollment, Event, WaitlistEntry, WaitlistEntryQuerySet
from participants import selectors as participant_selectors
from participants.models import User

_Done = TypeVar("_Done")


class EventAdminForm(forms.ModelForm):
    class Meta:
        model = Event
        fields = list(services.EVENT_FIELDS)

    def clean_capacity(self) -> int:
        capacity = self.cleaned_data["capacity"]
        enrolled = self.instance.enrolled_count if self.instance.pk else 0
        try:
            domain.check_capacity(capacity, enrolled=enrolled)
        except domain.InvalidValue as exc:
            raise ValidationError(exc.message) from exc
        return capacity


def person_link(participant: User) -> str:
    """ "Ann Lee <ann@example.com>", linking to the participant's page."""
    return format_html(
        '<a href="{}">{}</a>',
        reverse("admin:participants_participant_change", args=[participant.pk]),
        participant,
    )


class EnrollmentInline(PagedRowsInline):
    """Who holds a seat, and who has come (checked in at the door). Removing a row frees the seat
    (through the service)."""

    model = Enrollment
    page_parameter = "enrolled"
    fields = ["person", "enrolled_at", "reminded", "checked_in"]
    readonly_fields = ["person", "enrolled_at", "reminded", "checked_in"]
    extra = 0
    can_delete = True
    verbose_name = "enrolled participant"
    verbose_name_plural = "Enrolled participants"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Enrollment]:
        return super().get_queryset(request).select_related("participant").order_by("created_at", "id")

    @admin.display(description="Participant")
    def person(self, obj: Enrollment) -> str:
        return person_link(obj.participant)

    @admin.display(description="Enrolled at")
    def enrolled_at(self, obj: Enrollment) -> str:
        return display_for_value(obj.created_at, "")  # in the admin's zone and format

    @admin.display(description="Reminded at")
    def reminded(self, obj: Enrollment) -> str:
        # Empty until the reminder before the event (events.reminders); again after a move later.
        return display_for_value(obj.reminded_at, "—")

    @admin.display(description="Checked in at")
    def checked_in(self, obj: Enrollment) -> str:
        return display_for_value(obj.checked_in_at, "—")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CheckinForm(forms.Form):
    """The event page's "Check in" box: a code, typed or scanned at the door."""

    # As the API takes it (events/api/checkins.py): spaces and dashes allowed around the 16
    # characters, anything else refused as no code at all.
    checkin_code = forms.CharField(
        label="Check-in code",
        max_length=domain.CHECKIN_CODE_MAX_LENGTH,
        validators=[RegexValidator(domain.CHECKIN_CODE_AS_TYPED, domain.NOT_A_CHECKIN_CODE)],
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "ABCD-EFGH-IJKL-MNOP"}
        ),
    )


def picker_only(formfield: Any) -> Any:
    """The participant picker keeps its "+" (a new participant) but not the edit and view buttons
    the admin wraps it with: the person's own page is one click away in the lists above."""
    if formfield is not None and hasattr(formfield.widget, "can_change_related"):
        formfield.widget.can_change_related = formfield.widget.can_view_related = False
    return formfield


class NaturalAddRowFormSet(helpers.InlineAdminFormSet):
    """The inline's own wording for its add-row link (`add_row_text`), instead of Django's
    "Add another <verbose name>" ("Add another New enrollment")."""

    def inline_formset_data(self) -> str:
        data = json.loads(super().inline_formset_data())
        data["options"]["addText"] = getattr(self.opts, "add_row_text", data["options"]["addText"])
        return json.dumps(data)


class NewEnrollmentFormSet(forms.BaseInlineFormSet):
    """Participants to enroll. Refusals the form can foresee (closed, already enrolled, not enough
    seats) are form errors; the enrollment itself goes through the service when the event is saved,
    which still refuses what changed meanwhile (the admin then says so)."""

    def clean(self) -> None:
        super().clean()
        chosen = [
            f.cleaned_data["participant"]
            for f in self.forms
            if f.cleaned_data.get("participant") and not f.cleaned_data.get("DELETE")
        ]
        if not chosen:
            return
        event: Event = self.instance  # holds the event form's valid values, saved or not
        if None in (event.date, event.time, event.capacity):
            return  # a new event whose form has errors: they are shown, this is checked next time
        if len({p.pk for p in chosen}) < len(chosen):
            raise ValidationError("The same participant is listed twice.")
        enrolled = set()
        if event.pk is not None:
            enrolled = set(
                Enrollment.objects.filter(event_id=event.pk, participant__in=chosen).values_list(
                    "participant_id", flat=True
                )
            )
        now = timezone.now()
        room = domain.Seats(capacity=event.capacity, enrolled=0)  # seats are checked below, for all
        try:
            for participant in chosen:  # closed, then already enrolled: as the API answers them
                domain.check_can_enroll(
                    starts_at=event.starts_at,
                    now=now,
                    seats=room,
                    already_enrolled=participant.pk in enrolled,
                )
        except domain.Conflict as refusal:
            raise ValidationError(f"{participant}: {refusal.message}") from refusal
        # The seats this save leaves (its removals free some; whoever stays on the waiting list
        # gets one first, also one a raised capacity adds). A row gone meanwhile freed nothing:
        # the service then refuses, and the admin says so.
        seats = domain.Seats(
            capacity=event.capacity,
            enrolled=event.enrolled_count - _ticked_for_removal(self.data, Enrollment),
        )
        left = max(0, seats.left - (event.waitlist_count - _ticked_for_removal(self.data, WaitlistEntry)))
        if left < len(chosen):
            raise ValidationError(f"{len(chosen)} participant(s) to enroll, but only {left} seat(s) left.")


def _ticked_for_removal(data: Any, model: type[Enrollment] | type[WaitlistEntry]) -> int:
    """How many of the rows the event page's list of `model` showed are ticked for removal in the
    posted form (the list's inline has the prefix Django gives it: the relation's name)."""
    prefix = model._meta.get_field("event").remote_field.get_accessor_name()
    try:
        shown = min(int(data.get(f"{prefix}-INITIAL_FORMS", 0)), PagedRowsFormSet.page_size)
    except (TypeError, ValueError):
        return 0  # a tampered count: the list's own formset refuses it
    ticked, no_files = forms.CheckboxInput().value_from_datadict, MultiValueDict[str, Any]()
    return len([i for i in range(shown) if ticked(data, no_files, f"{prefix}-{i}-DELETE")])


class NewEnrollmentInline(admin.TabularInline):
    """Enrolls participants from the event's page, with the same rules as the API."""

    model = Enrollment
    template = ROWS_TEMPLATE
    formset = NewEnrollmentFormSet
    fields = ["participant"]
    autocomplete_fields = ["participant"]
    extra = 1
    can_delete = False
    verbose_name = "participant to enroll"
    verbose_name_plural = "Enroll participants"
    add_row_text = "Enroll another participant"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Enrollment]:
        return super().get_queryset(request).none()  # new rows only; EnrollmentInline lists the others

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return picker_only(super().formfield_for_dbfield(db_field, request, **kwargs))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "participant":
            # Admins hold no seats, and deactivated accounts take none.
            kwargs["queryset"] = participant_selectors.active_participants()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class WaitlistInline(PagedRowsInline):
    """The waiting list in order. Removing a row takes the person off it (through the service)."""

    model = WaitlistEntry
    page_parameter = "waiting"
    fields = ["position", "person", "joined_at"]
    readonly_fields = ["position", "person", "joined_at"]
    extra = 0
    can_delete = True
    verbose_name = "place on the waiting list"
    verbose_name_plural = "Waiting list"

    def get_queryset(self, request: HttpRequest) -> QuerySet[WaitlistEntry]:
        # Positions counted among all the event's entries: a page, or the rows a save names, shows
        # its own (101, 102, …).
        return (
            cast(WaitlistEntryQuerySet, super().get_queryset(request))
            .with_positions()
            .select_related("participant")
            .order_by("id")
        )

    @admin.display(description="Position")
    def position(self, obj: WaitlistEntry) -> int:
        return int(getattr(obj, "place", 0))

    @admin.display(description="Participant")
    def person(self, obj: WaitlistEntry) -> str:
        return person_link(obj.participant)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NewWaitlistFormSet(forms.BaseInlineFormSet):
    """Participants to put at the end of the waiting list; the service decides (full, not closed,
    not enrolled or waiting already; ahead of requests still pending, as an admin's hand) and a
    refusal is shown as a message."""


class NewWaitlistInline(admin.TabularInline):
    model = WaitlistEntry
    template = ROWS_TEMPLATE
    formset = NewWaitlistFormSet
    fields = ["participant"]
    autocomplete_fields = ["participant"]
    extra = 0
    can_delete = False
    verbose_name = "participant to put on the waiting list"
    verbose_name_plural = "Add to the waiting list"
    add_row_text = "Put a participant on the waiting list"

    def get_queryset(self, request: HttpRequest) -> QuerySet[WaitlistEntry]:
        return super().get_queryset(request).none()  # new rows only; WaitlistInline lists the others

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return picker_only(super().formfield_for_dbfield(db_field, request, **kwargs))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "participant":
            kwargs["queryset"] = participant_selectors.active_participants()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class WhenFilter(admin.SimpleListFilter):
    """Upcoming or past, by the start on the wall clock of the platform's zone."""

    title = "when"
    parameter_name = "when"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("upcoming", "Upcoming"), ("past", "Started or past")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value() == "upcoming":
            return queryset.filter(dashboard.upcoming_q())
        if self.value() == "past":
            return queryset.exclude(dashboard.upcoming_q())
        return queryset


class SeatsFilter(admin.SimpleListFilter):
    title = "seats"
    parameter_name = "seats"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("full", "Full"), ("available", "Seats left"), ("waitlist", "Has a waiting list")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value() == "full":
            return queryset.filter(enrolled_count__gte=F("capacity"))
        if self.value() == "available":
            return queryset.filter(enrolled_count__lt=F("capacity"))
        if self.value() == "waitlist":
            return queryset.filter(waitlist_count__gt=0)
        return queryset


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    form = EventAdminForm
    list_display = [
        "title",
        "date",
        "time",
        "location",
        "capacity",
        "enrolled_count",
        "seats_left",
        "fill",
        "waitlist_count",
        "attendance",
        "admission",
    ]
    list_filter = [WhenFilter, SeatsFilter, "admission"]
    date_hierarchy = "date"
    search_fields = ["title", "description", "location"]
    readonly_fields = ["enrolled_count", "waitlist_count", "attendance", "created_at", "updated_at"]
    inlines = [EnrollmentInline, NewEnrollmentInline, WaitlistInline, NewWaitlistInline]
    # The reports app adds its "generate report" action (reports/admin.py): reports builds on events.
    actions = ["export_participants_csv"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        # Sortable seat and attendance columns: computed by the database, in the changelist's one
        # query. Who checked in is counted per listed event (a subquery: only the page's events are
        # counted, where a join and GROUP BY would count every event's enrollments first).
        # NullIf: an event nobody is enrolled in has no attendance rate, not a division by zero.
        checked_in = (
            Enrollment.objects.filter(event=OuterRef("pk"), checked_in_at__isnull=False)
            .order_by()
            .values("event")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                left=F("capacity") - F("enrolled_count"),
                fill_percent=F("enrolled_count") * 100 / F("capacity"),
                checked_in=Coalesce(Subquery(checked_in), 0),
            )
            .annotate(attendance_percent=F("checked_in") * 100 / NullIf(F("enrolled_count"), 0))
        )

    @admin.display(description="Seats left", ordering="left")
    def seats_left(self, obj: Event) -> int:
        return obj.seats_left

    @admin.display(description="Fill", ordering="fill_percent")
    def fill(self, obj: Event) -> str:
        percent = min(100, round(100 * obj.enrolled_count / obj.capacity)) if obj.capacity else 0
        return format_html(
            '<span title="{} of {} seats taken" style="display:inline-block;vertical-align:middle;'
            "width:60px;height:8px;margin-right:4px;border-radius:4px;overflow:hidden;"
            'background:var(--hairline-color)"><span style="display:block;height:100%;width:{}%;'
            'background:var(--primary)"></span></span>{}%',
            obj.enrolled_count,
            obj.capacity,
            percent,
            percent,
        )

    @admin.display(description="Attendance", ordering="attendance_percent")
    def attendance(self, obj: Event) -> str:
        """Checked in of enrolled, e.g. "12 of 40 (30%)"; "—" while nobody is enrolled."""
        checked_in = getattr(obj, "checked_in", None)
        if checked_in is None:  # an object not read through get_queryset (the add page)
            checked_in = obj.enrollments.filter(checked_in_at__isnull=False).count() if obj.pk else 0
        if not obj.enrolled_count:
            return "—"
        return f"{checked_in} of {obj.enrolled_count} ({round(100 * checked_in / obj.enrolled_count)}%)"

    def get_urls(self) -> list[URLPattern]:
        check_in = path(
            "<path:object_id>/check-in/",
            self.admin_site.admin_view(self.check_in_view),
            name="events_event_check_in",
        )
        return [check_in, *super().get_urls()]

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        context["checkin_form"] = CheckinForm()  # the box above the event's form (change_form.html)
        return super().render_change_form(request, context, *args, **kwargs)

    def check_in_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from the event page's "Check in" box: checks the code's holder in through the
        service and says who, or why not (the service's own words, as the API's `detail`)."""
        event = self.get_object(request, object_id)  # None for an unknown or malformed id
        if event is None:
            raise Http404("No event with this id.")
        if not self.has_change_permission(request, event):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:events_event_change", args=[event.pk]))
        if request.method != "POST":
            return back
        form = CheckinForm(request.POST)
        if not form.is_valid():
            # The field's own words: the API's for a text that is no code, or "required", or too long.
            for error in form.errors["checkin_code"]:
                self.message_user(request, str(error), messages.ERROR)
            return back
        code = form.cleaned_data["checkin_code"]
        # (No full stop after the times below: the admin's format may end with one, "9:51 a.m.".)
        try:
            enrollment = services.check_in(event_id=event.pk, code=code)
        except domain.AlreadyCheckedIn as refusal:
            first = dt.datetime.fromisoformat(str(refusal.extra["checked_in_at"]))
            self.message_user(
                request,
                f"{refusal.message} First check-in: {display_for_value(first, '')}",
                messages.WARNING,
            )
        except DomainError as refusal:
            self.message_user(request, f"{code}: {refusal.message}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"{enrollment.participant} checked in at {display_for_value(enrollment.checked_in_at, '')}",
                messages.SUCCESS,
            )
        return back

    def get_inline_formsets(
        self, request: HttpRequest, formsets: Any, inline_instances: Any, obj: Any = None
    ) -> list[Any]:
        inline_admin_formsets = super().get_inline_formsets(request, formsets, inline_instances, obj)
        for inline_admin_formset in inline_admin_formsets:
            if hasattr(inline_admin_formset.opts, "add_row_text"):
                inline_admin_formset.__class__ = NaturalAddRowFormSet  # same state, own wording
        return inline_admin_formsets

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as refusal:
            # The event changed between the form's checks and the save's, under its lock (a seat
            # taken below a lowered capacity, the event deleted): the page's one transaction rolled
            # back, nothing was saved.
            self.message_user(request, f"Nothing was saved: {refusal.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # Writes go through the services: they keep seat counts right and invalidate the API cache.
    def save_model(self, request: HttpRequest, obj: Event, form: forms.ModelForm, change: bool) -> None:
        if not change:  # (a change is saved with the lists, in the order save_related gives)
            self._saved(obj, services.create_event(**self._fields(form)))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The waiting list's removals first, then the event's fields, then the seats' removals
        and the additions: a seat freed in the same save (a removal, a raised capacity) goes to
        whoever stays at the head of the list, not to someone the admin is taking off it."""
        form.save_m2m()
        leaving = [f for f in formsets if f.model is WaitlistEntry and not isinstance(f, NewWaitlistFormSet)]
        for formset in leaving:
            self.save_formset(request, form, formset, change=change)
        if change:
            self._saved(form.instance, services.update_event(event_id=form.instance.pk, **self._fields(form)))
        for formset in formsets:
            if formset not in leaving:
                self.save_formset(request, form, formset, change=change)

    @staticmethod
    def _fields(form: forms.ModelForm) -> dict[str, Any]:
        return {name: form.cleaned_data[name] for name in services.EVENT_FIELDS}

    @staticmethod
    def _saved(obj: Event, saved: Event) -> None:
        obj.pk, obj.enrolled_count, obj.waitlist_count = saved.pk, saved.enrolled_count, saved.waitlist_count

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if isinstance(formset, NewEnrollmentFormSet):
            self._enroll(request, event_id=form.instance.pk, formset=formset)
            return
        if isinstance(formset, NewWaitlistFormSet):
            self._join_waitlist(request, event_id=form.instance.pk, formset=formset)
            return
        if formset.model is WaitlistEntry:
            left = [f.instance for f in formset.deleted_forms if f.instance.pk is not None]
            for entry in left:
                with contextlib.suppress(DomainError):  # already gone (promoted, or left meanwhile)
                    services.leave_waitlist(event_id=entry.event_id, participant_id=entry.participant_id)
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], left
            return
        # The list of enrollments only deletes (its rows are read-only); through the service.
        removed = [f.instance for f in formset.deleted_forms if f.instance.pk is not None]
        for enrollment in removed:
            with contextlib.suppress(DomainError):  # already gone: removed meanwhile by someone else
                services.remove_participant(
                    event_id=enrollment.event_id, participant_id=enrollment.participant_id
                )
        # What formset.save() would have recorded, for the admin's change message.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], removed

    def _enroll(self, request: HttpRequest, *, event_id: int, formset: NewEnrollmentFormSet) -> None:
        enrolled = self._for_each_participant(
            request,
            formset,
            lambda participant: services.enroll(event_id=event_id, participant_id=participant.pk),
            refused="was not enrolled",
        )
        # What formset.save() would have recorded, for the admin's change message.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = enrolled, [], []

    def _join_waitlist(self, request: HttpRequest, *, event_id: int, formset: NewWaitlistFormSet) -> None:
        joined = self._for_each_participant(
            request,
            formset,
            lambda participant: (
                participant,
                services.join_waitlist(
                    event_id=event_id, participant_id=participant.pk, ahead_of_the_queue=True
                ),
            ),
            refused="was not put on the waiting list",
        )
        for participant, place in joined:
            self.message_user(request, f"{participant} is on the waiting list at position {place.position}.")
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def _for_each_participant(
        self, request: HttpRequest, formset: Any, act: Callable[[Any], _Done], *, refused: str
    ) -> list[_Done]:
        """`act(participant)` for each participant the formset's new rows name, through a service;
        a domain refusal (the event or the list changed since the form was checked) is shown to the
        admin as "<participant> <refused>: <why>". Returns what `act` returned for the others."""
        done = []
        for f in formset.forms:
            participant = f.cleaned_data.get("participant")
            # (has_changed: false for a new row that an admin without the add permission posted.)
            if participant is None or f.cleaned_data.get("DELETE") or not f.has_changed():
                continue
            try:
                done.append(act(participant))
            except DomainError as refusal:
                self.message_user(request, f"{participant} {refused}: {refusal.message}", messages.ERROR)
        return done

    def delete_model(self, request: HttpRequest, obj: Event) -> None:
        with contextlib.suppress(services.EventNotFound):  # deleted meanwhile by someone else
            services.delete_event(event_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        for event_id in queryset.values_list("pk", flat=True):
            with contextlib.suppress(services.EventNotFound):  # deleted meanwhile by someone else
                services.delete_event(event_id=event_id)

    def has_export_permission(self, request: HttpRequest) -> bool:
        """The export lists participants' names and e-mail addresses: whoever may see them (the
        participants' own view permission), not anyone who may merely see the events."""
        return bool(request.user.has_perm("participants.view_participant"))

    @admin.action(description="Export participants of the selected events as CSV", permissions=["export"])
    def export_participants_csv(self, request: HttpRequest, queryset: QuerySet[Event]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="event-participants.csv"'
        writer = csv.writer(response)
        writer.writerow(
            [
                "event_id",
                "event_title",
                "event_date",
                "participant_id",
                "full_name",
                "email",
                "enrolled_at",
                "checked_in_at",  # empty until they check in at the door
            ]
        )
        enrollments = (
            Enrollment.objects.filter(event__in=queryset)
            .select_related("event", "participant")
            .order_by("event__date", "event__time", "event_id", "created_at", "id")
        )
        for e in enrollments.iterator(chunk_size=2000):
            writer.writerow(
                [
                    e.event_id,
                    _csv_safe(e.event.title),
                    e.event.date.isoformat(),
                    e.participant_id,
                    _csv_safe(e.participant.full_name),
                    _csv_safe(e.participant.email),  # `=cmd|x@example.com` is a valid address
                    e.created_at.isoformat(),
                    e.checked_in_at.isoformat() if e.checked_in_at else "",
                ]
            )
        return response


def _csv_safe(value: str) -> str:
    """Neutralises spreadsheet formulas in user-entered text (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# The admin index shows the dashboard (events.dashboard) above the list of apps.
admin.site.index_template = "admin/dashboard_index.html"
