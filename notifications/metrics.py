from prometheus_client import Counter

SENT = Counter("notifications_sent", "Notification emails sent.")
FAILED = Counter("notifications_failed", "Notifications given up after their retries.")
