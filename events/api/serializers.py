from __future__ import annotations

from rest_framework import serializers

from config.serializers import IdRelatedField, StrictModelSerializer, StrictSerializer
from events.domain import MIN_CAPACITY, Admission, RequestStatus, display_checkin_code
from events.models import Enrollment, Event, WaitlistEntry
from participants import selectors as participant_selectors


class EventSerializer(StrictModelSerializer):
    capacity = serializers.IntegerField(min_value=MIN_CAPACITY, max_value=2_147_483_647)
    enrolled_count = serializers.IntegerField(read_only=True)
    seats_left = serializers.IntegerField(read_only=True)
    waitlist_count = serializers.IntegerField(read_only=True)
    time = serializers.TimeField(input_formats=["%H:%M", "%H:%M:%S"])
    admission = serializers.ChoiceField(
        choices=list(Admission.CHOICES),
        default=Admission.DIRECT,
        help_text="direct: enrollment answers 201/409 at once. queue: enrollment answers 202 and "
        "requests are decided in arrival order (for a rush).",
    )

    class Meta:
        model = Event
        fields = [
            "id",
            "title",
            "description",
            "date",
            "time",
            "duration_minutes",
            "location",
            "capacity",
            "enrolled_count",
            "seats_left",
            "waitlist_count",
            "admission",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class EnrollmentSerializer(serializers.Serializer):
    """An enrollment as its POST answers it: ids of both sides. Declared field by field: a
    ModelSerializer would introspect the model again for every enrollment answered."""

    id = serializers.IntegerField(read_only=True)
    event = serializers.IntegerField(source="event_id", read_only=True)
    participant = serializers.IntegerField(source="participant_id", read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class EnrollRequestSerializer(StrictSerializer):
    """An admin names the participant to enroll (or put on the waiting list); a participant sends
    no body (acts for themself)."""

    participant = IdRelatedField(
        queryset=participant_selectors.active_participants(),
        required=False,
        help_text="Admins only: for whom.",
    )


class EventParticipantSerializer(serializers.ModelSerializer):
    """A participant of an event, as admins list them (`id` is the participant's). Whether they came
    (`checked_in_at`), but not their check-in code: the code is the participant's ticket."""

    id = serializers.IntegerField(source="participant.id", read_only=True)
    email = serializers.EmailField(source="participant.email", read_only=True)
    full_name = serializers.CharField(source="participant.full_name", read_only=True)
    enrolled_at = serializers.DateTimeField(source="created_at", read_only=True)
    checked_in_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When they checked in at the door; null until then."
    )

    class Meta:
        model = Enrollment
        fields = ["id", "email", "full_name", "enrolled_at", "checked_in_at"]


class MyEnrollmentSerializer(serializers.ModelSerializer):
    """One of your enrollments, with its event, your check-in code for the door (as the confirmation
    e-mail prints it) and when you checked in."""

    # Only ever the caller's own enrollments are serialized with this (MyEnrollmentsView): the
    # code is a ticket, and nobody else's is shown to anyone.
    event = EventSerializer(read_only=True)
    checkin_code = serializers.SerializerMethodField(
        help_text="Your check-in code, to show at the door (as in the confirmation e-mail)."
    )
    checked_in_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When you checked in; null until then."
    )

    class Meta:
        model = Enrollment
        fields = ["id", "event", "created_at", "checkin_code", "checked_in_at"]

    def get_checkin_code(self, enrollment: Enrollment) -> str:
        return display_checkin_code(enrollment.checkin_code)


class QueuedEnrollmentSerializer(serializers.Serializer):
    """The 202 answer of an enrollment into a queued event: the request, pending."""

    status = serializers.CharField(read_only=True)
    event = serializers.IntegerField(source="event_id", read_only=True)
    participant = serializers.IntegerField(source="participant_id", read_only=True)
    queued_at = serializers.DateTimeField(read_only=True)


class EnrollmentStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(RequestStatus.CHOICES), read_only=True)
    queued_at = serializers.DateTimeField(read_only=True)
    decided_at = serializers.DateTimeField(read_only=True, allow_null=True)
    position = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The place on the waiting list while waitlisted."
    )


class WaitlistPlaceSerializer(serializers.Serializer):
    event = serializers.IntegerField(source="event_id", read_only=True)
    participant = serializers.IntegerField(source="participant_id", read_only=True)
    position = serializers.IntegerField(read_only=True)
    joined_at = serializers.DateTimeField(read_only=True)


class WaitlistParticipantSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    email = serializers.EmailField(read_only=True)
    full_name = serializers.CharField(read_only=True)


class WaitlistEntrySerializer(serializers.ModelSerializer):
    """One place on an event's waiting list, as admins list them."""

    participant = WaitlistParticipantSerializer(read_only=True)
    position = serializers.IntegerField(read_only=True)

    class Meta:
        model = WaitlistEntry
        fields = ["participant", "position", "joined_at"]
