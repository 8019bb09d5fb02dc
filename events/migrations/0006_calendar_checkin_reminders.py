"""Calendar files (duration, SEQUENCE), check-in codes and reminders.

Existing enrollments get a check-in code each: the column is added nullable, filled row by row with
its own random code, then made unique and required (one default for all rows would collide).
"""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import events.domain


def give_codes(apps, schema_editor):
    Enrollment = apps.get_model("events", "Enrollment")
    pending = Enrollment.objects.filter(checkin_code__isnull=True).only("pk")
    for enrollment in pending.iterator(chunk_size=2000):
        enrollment.checkin_code = events.domain.new_checkin_code()
        enrollment.save(update_fields=["checkin_code"])


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0005_text_limits"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="duration_minutes",
            field=models.PositiveIntegerField(
                default=60,
                help_text="How long the event lasts: its end in calendar files.",
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(20160),
                ],
            ),
        ),
        migrations.AddField(
            model_name="event",
            name="calendar_sequence",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="enrollment",
            name="checked_in_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="enrollment",
            name="reminded_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="enrollment",
            name="checkin_code",
            field=models.CharField(editable=False, max_length=32, null=True),
        ),
        migrations.RunPython(give_codes, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="enrollment",
            name="checkin_code",
            field=models.CharField(
                default=events.domain.new_checkin_code, editable=False, max_length=32, unique=True
            ),
        ),
        migrations.CreateModel(
            name="RevokedCheckinCode",
            fields=[
                ("code", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("participant_id", models.BigIntegerField()),
                ("revoked_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="revoked_checkin_codes",
                        to="events.event",
                    ),
                ),
            ],
        ),
    ]
