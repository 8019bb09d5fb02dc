from celery import shared_task

from reports import services


@shared_task(name=services.BUILD_TASK)
def build_report(report_id: int) -> None:
    """Builds one report (idempotent; acknowledged only when done, so a lost worker's build reruns)."""
    services.build(report_id=report_id)
