from typing import Any

from rest_framework import generics
from rest_framework.permissions import IsAuthenticated

from notifications import selectors
from notifications.api.serializers import NotificationSerializer


class MyNotificationsView(generics.ListAPIView):
    """The signed-in user's notifications, newest first."""

    permission_classes = [IsAuthenticated]
    serializer_class = NotificationSerializer

    def get_queryset(self) -> Any:
        return selectors.notifications_of(user_id=self.request.user.pk)
