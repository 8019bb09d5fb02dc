from django.urls import path
from rest_framework.routers import SimpleRouter

from config import converters  # noqa: F401  (registers <id:...>)
from reports.api import views

router = SimpleRouter(use_regex_path=False)
router.register("reports", views.ReportViewSet, basename="report")

urlpatterns = [
    path("events/<id:event_id>/reports/", views.EventReportsView.as_view(), name="event-reports"),
    *router.urls,
]
