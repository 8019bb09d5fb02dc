from django.urls import path

from notifications.api import views

urlpatterns = [
    path("me/notifications/", views.MyNotificationsView.as_view(), name="me-notifications"),
]
