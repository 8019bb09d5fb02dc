"""`/metrics`: the counters move with what happens, and every metric the dashboard uses exists."""

import re

import pytest
from django.core import mail

from events import services as event_services
from tests.factories import EventFactory, UserFactory
from tests.helpers import assert_problem, client_for, scrape_metrics

pytestmark = pytest.mark.django_db(transaction=True)


def value(samples, name, **labels):
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    return samples.get(wanted, 0.0)


def test_enrollment_counters_move(anon, participant_api, participant):
    event = EventFactory(capacity=1, title="Town hall")
    before = scrape_metrics(anon)
    assert participant_api.post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 201
    assert_problem(participant_api.post(f"/api/v1/events/{event.pk}/enrollments/"), 409, "already_enrolled")
    assert_problem(
        client_for(UserFactory()).post(f"/api/v1/events/{event.pk}/enrollments/"), 409, "event_full"
    )
    assert participant_api.delete(f"/api/v1/events/{event.pk}/enrollments/me/").status_code == 204
    after = scrape_metrics(anon)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("events_enrollments_total") == 1
    assert moved("events_cancellations_total") == 1
    assert moved("events_enrollments_rejected_total", reason="already_enrolled") == 1
    assert moved("events_enrollments_rejected_total", reason="event_full") == 1
    assert moved("notifications_sent_total") == 2 == len(mail.outbox)
    assert value(after, "events_seats_left", event_id=event.pk) == 1
    assert "Town hall" not in after  # ids only in labels: titles are free text
    assert value(after, "outbox_pending_messages") == 0
    assert (
        moved(
            "celery_task_duration_seconds_count",
            queue="notifications",
            task="notifications.notify",
        )
        == 2
    )
    assert any(
        name.startswith("django_http_requests_latency_seconds_by_view_method_bucket") for name in after
    )


def test_failures_and_outbox_backlog(anon, participant, settings):
    from tests.helpers import DEAD_BROKER, broker

    settings.EMAIL_BACKEND = "tests.support.FailingEmailBackend"
    settings.NOTIFICATION_MAX_RETRIES = 0
    before = scrape_metrics(anon)
    event_services.enroll(event_id=EventFactory().pk, participant_id=participant.pk)
    with broker(DEAD_BROKER):
        event_services.enroll(event_id=EventFactory().pk, participant_id=participant.pk)
    after = scrape_metrics(anon)
    assert value(after, "notifications_failed_total") - value(before, "notifications_failed_total") == 1
    assert value(after, "outbox_pending_messages") == 1
    assert value(after, "outbox_oldest_pending_age_seconds") >= 0


def test_every_metric_on_the_dashboard_is_exported(anon, admin_api, participant_api, settings):
    from tests.integration.test_deploy_files import DASHBOARD_METRICS

    event = EventFactory(capacity=1)
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    participant_api.delete(f"/api/v1/events/{event.pk}/enrollments/me/")
    admin_api.post(f"/api/v1/events/{event.pk}/reports/", {})
    settings.EMAIL_BACKEND = "tests.support.FailingEmailBackend"
    settings.NOTIFICATION_MAX_RETRIES = 0
    participant_api.post(f"/api/v1/events/{event.pk}/enrollments/")
    from config.celery import app

    app.tasks["notifications.send_notification"].apply(
        kwargs={"notification_id": "not-an-id"}
    )  # a task failure
    exported = {re.sub(r"\{.*", "", name) for name in scrape_metrics(anon)}
    missing = {name for name in DASHBOARD_METRICS if name not in exported}
    assert not missing, f"the dashboard uses metrics nobody exports: {sorted(missing)}"


def test_several_processes_add_up_in_multiprocess_mode(tmp_path):
    """gunicorn workers each count on their own; a scrape of any of them reports the sum."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VAR_DIR": str(tmp_path / "var"),
    }
    count = "import django; django.setup(); from events.metrics import ENROLLMENTS; ENROLLMENTS.inc()"
    scrape_code = (
        "import django; django.setup(); from config.metrics import _process_registry;"
        "from prometheus_client import generate_latest; print(generate_latest(_process_registry()).decode())"
    )
    root = Path(__file__).resolve().parents[2]
    for _ in range(2):  # two worker processes
        subprocess.run([sys.executable, "-c", count], cwd=root, env=env, check=True, capture_output=True)
    out = subprocess.run(
        [sys.executable, "-c", scrape_code], cwd=root, env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "events_enrollments_total 2.0" in out


def test_the_relay_serves_its_own_metrics(tmp_path):
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from tests.helpers import database_url_for_children, free_port, wait_until

    port = free_port()
    env = {
        **os.environ,
        "METRICS_PORT": str(port),
        "DATABASE_URL": database_url_for_children(),
        "VAR_DIR": str(tmp_path),
    }
    relay = subprocess.Popen(
        [sys.executable, "manage.py", "relay_outbox", "--interval", "0.2"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def scraped() -> str:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()  # noqa: S310
            except OSError:
                return ""

        assert "outbox_published_total" in wait_until(scraped, timeout=60)
    finally:
        relay.terminate()
        relay.wait(timeout=30)


def test_metrics_need_the_scrapers_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-scraper-token"
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["Content-Type"].startswith("application/problem+json")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper-token")
    assert scraped.status_code == 200 and b"events_enrollments_total" in scraped.content
