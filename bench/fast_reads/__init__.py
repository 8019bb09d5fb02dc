"""The platform with events/api/reads.py routed as proposed, for `http_bench.py --route-fast-reads`.

Until events/api/views.py puts `cached_event_read` in front of the event list and detail, this
measures what it will give: the platform's settings with one URLconf change, nothing else.
"""
