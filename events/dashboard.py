"""The admin index's dashboard: what an admin wants to see at a glance, one query per figure.

Reads only; the admin's index template shows them (config/templates/admin/dashboard_index.html,
through the `admin_dashboard` template tag). The chart is drawn here as inline SVG: nothing is
loaded from anywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from events.models import Enrollment, Event

UPCOMING_SHOWN = 10
CHART_DAYS = 30


def local_now() -> dt.datetime:
    """Now on the wall clock of the platform's zone, the zone event dates and times are in."""
    return timezone.localtime(timezone.now(), timezone.get_default_timezone())


def upcoming_q(now: dt.datetime | None = None) -> Q:
    """Events that have not started yet (date and time are wall-clock times in TIME_ZONE)."""
    now = now or local_now()
    return Q(date__gt=now.date()) | Q(date=now.date(), time__gt=now.time())


@dataclass(frozen=True)
class UpcomingEvent:
    id: int
    title: str
    date: dt.date
    time: dt.time
    capacity: int
    enrolled: int
    waitlist: int
    admission: str

    @property
    def fill_percent(self) -> int:
        return min(100, round(100 * self.enrolled / self.capacity)) if self.capacity else 0

    @property
    def seats_left(self) -> int:
        return max(0, self.capacity - self.enrolled)


def upcoming_events(limit: int = UPCOMING_SHOWN) -> list[UpcomingEvent]:
    """The next events, soonest first, with their seats: one query."""
    rows = (
        Event.objects.filter(upcoming_q())
        .order_by("date", "time", "id")
        .values_list(
            "id", "title", "date", "time", "capacity", "enrolled_count", "waitlist_count", "admission"
        )[:limit]
    )
    return [UpcomingEvent(*row) for row in rows]


@dataclass(frozen=True)
class DayCount:
    day: dt.date
    count: int


def enrollments_per_day(days: int = CHART_DAYS) -> list[DayCount]:
    """Enrollments made on each of the last `days` days (today included, days of TIME_ZONE),
    oldest first, days without any included as 0: one query."""
    zone = timezone.get_default_timezone()
    today = local_now().date()
    first = today - dt.timedelta(days=days - 1)
    since = timezone.make_aware(dt.datetime.combine(first, dt.time.min), zone)
    counted = dict(
        Enrollment.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [DayCount(day, counted.get(day, 0)) for day in (first + dt.timedelta(days=i) for i in range(days))]


def failed_notifications() -> int:
    """E-mails given up after their last retry: one query."""
    # notifications builds on events, not the other way round: imported where it is used.
    from notifications.domain import Status
    from notifications.models import Notification

    return Notification.objects.filter(status=Status.FAILED).count()


REPORTS_NOT_READY = ("pending", "running")


def reports_not_ready() -> int:
    """Reports requested and not built yet (pending or running): one query."""
    from reports.models import Report

    return Report.objects.filter(status__in=REPORTS_NOT_READY).count()


@dataclass(frozen=True)
class Dashboard:
    upcoming: list[UpcomingEvent]
    per_day: list[DayCount]
    failed_notifications: int
    reports_not_ready: int

    @property
    def enrollments_in_period(self) -> int:
        return sum(d.count for d in self.per_day)

    @property
    def chart(self) -> SafeString:
        return bar_chart_svg(self.per_day)


def dashboard() -> Dashboard:
    """Every figure of the dashboard: four queries, however many events there are."""
    return Dashboard(
        upcoming=upcoming_events(),
        per_day=enrollments_per_day(),
        failed_notifications=failed_notifications(),
        reports_not_ready=reports_not_ready(),
    )


def bar_chart_svg(days: list[DayCount], *, width: int = 600, height: int = 160) -> SafeString:
    """A bar per day as inline SVG: the count of each day in its tooltip, the highest count on the
    axis, the first, middle and last dates below. Colours come from the admin's CSS variables, so
    the chart follows its light and dark themes."""
    top, bottom, left, right = 12, 22, 28, 4
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max((d.count for d in days), default=0)
    scale = max(highest, 1)
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.75, 1.0)
    bars = format_html_join(
        "",
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {} enrollment{}</title></rect>',
        (
            (
                f"{left + i * slot + (slot - bar_w) / 2:.1f}",
                f"{top + plot_h - plot_h * d.count / scale:.1f}",
                f"{bar_w:.1f}",
                f"{plot_h * d.count / scale:.1f}",
                d.day.isoformat(),
                d.count,
                "" if d.count == 1 else "s",
            )
            for i, d in enumerate(days)
        ),
    )
    # The first, middle and last days, anchored so that none runs past the edges.
    labelled = [(0, "start"), (len(days) // 2, "middle"), (len(days) - 1, "end")] if days else []
    labels = format_html_join(
        "",
        '<text class="label" x="{}" y="{}" text-anchor="{}">{}</text>',
        (
            (f"{left + i * slot + slot / 2:.1f}", height - 6, anchor, days[i].day.strftime("%d %b"))
            for i, anchor in labelled
        ),
    )
    return format_html(
        '<svg class="enrollment-chart" viewBox="0 0 {w} {h}" width="100%" role="img" '
        'aria-label="Enrollments per day over the last {n} days: {total} in all, at most {top_count} a day">'
        '<line class="axis" x1="{left}" y1="{base}" x2="{end}" y2="{base}"></line>'
        '<text class="label" x="{lx}" y="{ty}" text-anchor="end">{top_count}</text>'
        '<text class="label" x="{lx}" y="{base}" text-anchor="end">0</text>'
        "{bars}{labels}</svg>",
        w=width,
        h=height,
        n=len(days),
        total=sum(d.count for d in days),
        top_count=highest,
        left=left,
        end=width - right,
        base=top + plot_h,
        lx=left - 4,
        ty=top + 4,
        bars=bars,
        labels=labels,
    )
