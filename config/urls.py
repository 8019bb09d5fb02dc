from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import apidocs, health, landing
from config.metrics import metrics_view

api_v1 = [
    path("", include("participants.api.urls")),
    path("", include("events.api.urls")),
    path("", include("notifications.api.urls")),
    path("", include("reports.api.urls")),
]

urlpatterns = [
    path("", landing.landing, name="landing"),  # also the admin's "View site"
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", apidocs.redoc_page, name="redoc"),  # served without any outside request
    path("api/redoc/redoc.standalone.js", apidocs.redoc_bundle, name="redoc-bundle"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
]
