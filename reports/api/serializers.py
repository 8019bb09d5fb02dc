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
        child=serializers.EmailField(),
        required=False,
        min_length=1,
        max_length=50,
        help_text="Who gets the report by email (default: the requesting admin).",
    )
