from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("participants", "0003_administrator_participant_proxies"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="calendar_token",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True),
        ),
    ]
