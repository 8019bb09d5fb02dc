from rest_framework import serializers

from config.serializers import StrictSerializer
from reports.models import Report


class ReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = Report
        fields = [
            "id",
            "event",
            "status",
            "participant_count",
            "document_bytes",
            "gzip_bytes",
            "recipients",
            "requested_by",
            "created_at",
            "started_at",
            "completed_at",
            "error",
        ]
        read_only_fields = fields


class ReportRequestSerializer(StrictSerializer):
    recipients = serializers.ListField(
        # As long as an address column holds (Django's EmailField, the notification's among them:
        # 254). The validator alone takes up to 320 characters, and one longer address failed the
        # whole report at its end, on PostgreSQL.
        child=serializers.EmailField(max_length=254),
        required=False,
        min_length=1,
        max_length=50,
        help_text="Who gets the report by email (default: the requesting admin).",
    )
