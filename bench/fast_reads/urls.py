"""config.urls with the event list and detail behind events.api.reads.with_cached_reads."""

from django.urls import include, path

from events.api import views
from events.api.reads import with_cached_reads

urlpatterns = [
    path("api/v1/events/", with_cached_reads(views.EventViewSet.as_view({"get": "list", "post": "create"}))),
    path(
        "api/v1/events/<int:pk>/",
        with_cached_reads(
            views.EventViewSet.as_view(
                {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
            )
        ),
    ),
    path("", include("config.urls")),
]
