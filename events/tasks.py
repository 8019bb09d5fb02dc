from typing import Any

from celery import shared_task

from events import admission, reminders, services


@shared_task(name=admission.DECIDE_TASK, batched=True)
def decide_admissions(items: list[dict[str, Any]]) -> int:
    """The admission consumer's task: decides the pending requests of the events named, in queue
    order. One message wakes it for many requests (each process's waker gathers them); a message
    that finds its requests decided already (redelivered, or decided by an earlier wake-up) does
    nothing."""
    return admission.decide_pending(event_ids={item["event_id"] for item in items})


@shared_task(name=reminders.SEND_TASK)
def send_reminders() -> int:
    """Celery beat's every-minute job: reminds everyone whose reminder has come due."""
    return reminders.send_due_reminders()


@shared_task(name=services.WITHDRAW_RETIRED_TASK)
def withdraw_retired_accounts() -> int:
    """Celery beat's every-minute sweep: accounts retired but still taking part give it back."""
    return len(services.withdraw_retired_accounts())
