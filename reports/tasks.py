from celery import shared_task

from notifications.tasks import DATABASE_AWAY, retry_while_database_away
from reports import services


@shared_task(bind=True, name=services.BUILD_TASK, max_retries=None)
def build_report(self, report_id: int) -> None:
    """Builds one report (idempotent; acknowledged only when done, so a lost worker's build reruns,
    and so does one that met the database away)."""
    try:
        services.build(report_id=report_id)
    except DATABASE_AWAY as exc:
        retry_while_database_away(self, exc)
