from django.urls import path
from rest_framework.routers import SimpleRouter

from config import converters  # noqa: F401  (registers <id:...>)
from participants.api import views

router = SimpleRouter(use_regex_path=False)
router.register("participants", views.ParticipantViewSet, basename="participant")

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="auth-register"),
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("auth/token/refresh/", views.RefreshView.as_view(), name="auth-token-refresh"),
    path("auth/logout/", views.LogoutView.as_view(), name="auth-logout"),
    path("me/", views.MeView.as_view(), name="me"),
    *router.urls,
]
