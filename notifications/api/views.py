from typing import Any

from rest_framework import generics
from rest_framework.permissions import IsAuthenticated

from notifications import selectors
from notifications.api.serializers import NotificationSerializer
from participants.permissions import signed_in_user_id


class MyNotificationsView(generics.ListAPIView):
    """The signed-in user's notifications, newest first."""

    permission_classes = [IsAuthenticated]
    serializer_class = NotificationSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: nobody is signed in
            return selectors.notifications_of(user_id=0)
        return selectors.notifications_of(user_id=signed_in_user_id(self.request))
