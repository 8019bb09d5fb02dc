from prometheus_client import Counter

ENROLLMENTS = Counter("events_enrollments", "Enrollments committed.")
CANCELLATIONS = Counter("events_cancellations", "Enrollments cancelled or removed.")
REJECTED = Counter(
    "events_enrollments_rejected", "Enrollments refused, by reason (the error code).", ["reason"]
)
