from prometheus_client import Counter

ENROLLMENTS = Counter("events_enrollments", "Enrollments committed.")
CANCELLATIONS = Counter("events_cancellations", "Enrollments cancelled or removed.")
REJECTED = Counter(
    "events_enrollments_rejected", "Enrollments refused, by reason (the error code).", ["reason"]
)
WAITLISTED = Counter("events_waitlisted", "Participants put on a waiting list (joined, or decided so).")
PROMOTIONS = Counter("events_waitlist_promotions", "Participants enrolled from the head of a waiting list.")
ADMISSION_DECISIONS = Counter(
    "events_admission_decisions", "Queued enrollment requests decided, by outcome.", ["status"]
)
CHECK_INS = Counter("events_check_ins", "Participants checked in at the door (first check-in of a code).")
REMINDERS = Counter("events_reminders", "Participants sent a reminder before an event.")
