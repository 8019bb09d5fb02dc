import re

from django.urls import path
from rest_framework.routers import SimpleRouter

from config import converters  # noqa: F401  (registers <id:...>)
from config.fastlane import FastRoute
from events.api import calendar, reads, views
from events.api.checkins import EventCheckinsView

router = SimpleRouter(use_regex_path=False)
router.register("events", views.EventViewSet, basename="event")

urlpatterns = [
    *router.urls,
    path("events/<id:event_id>/enrollments/", views.EventEnrollmentsView.as_view(), name="event-enrollments"),
    path(
        "events/<id:event_id>/enrollments/me/", views.MyEnrollmentView.as_view(), name="event-enrollment-me"
    ),
    path("events/<id:event_id>/waitlist/", views.EventWaitlistView.as_view(), name="event-waitlist"),
    path("events/<id:event_id>/waitlist/me/", views.MyWaitlistView.as_view(), name="event-waitlist-me"),
    path(
        "events/<id:event_id>/participants/",
        views.EventParticipantsView.as_view(),
        name="event-participants",
    ),
    path(
        "events/<id:event_id>/participants/<id:participant_id>/",
        views.EventParticipantView.as_view(),
        name="event-participant",
    ),
    path("events/<id:event_id>/check-ins/", EventCheckinsView.as_view(), name="event-check-ins"),
    path("me/enrollments/", views.MyEnrollmentsView.as_view(), name="me-enrollments"),
    path("events/<id:event_id>/calendar.ics", calendar.EventCalendarView.as_view(), name="event-calendar"),
    path("me/calendar/", calendar.MyCalendarView.as_view(), name="me-calendar"),
    path("me/calendar/rotate/", calendar.MyCalendarRotateView.as_view(), name="me-calendar-rotate"),
    path("calendar/feed.ics", calendar.CalendarFeedView.as_view(), name="calendar-feed"),
    path(
        "participants/<id:participant_id>/events/",
        views.ParticipantEventsView.as_view(),
        name="participant-events",
    ),
]

# The hottest routes' usual case, answered in front of Django's handler under WSGI (config/fastlane.py,
# FAST_LANE_ROUTES). The paths are the routes above under config/urls.py's `api/v1/`, and the names
# theirs (a test holds both to the URLconf). An id of more digits than any bigint goes to Django.
FAST_ROUTES = (
    FastRoute(
        "GET",
        re.compile(r"/api/v1/events/"),
        "event-list",
        reads.list_in_fast_lane,
        miss=reads.list_miss_in_fast_lane,
    ),
    FastRoute(
        "GET",
        re.compile(r"/api/v1/events/(?P<event_id>[0-9]{1,18})/"),
        "event-detail",
        reads.detail_in_fast_lane,
        miss=reads.detail_miss_in_fast_lane,
    ),
    FastRoute(
        "POST",
        re.compile(r"/api/v1/events/(?P<event_id>[0-9]{1,18})/enrollments/"),
        "event-enrollments",
        views.enroll_in_fast_lane,
        uses_database=True,
    ),
)
