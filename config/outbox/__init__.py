"""The transactional outbox: side effects recorded in the business transaction, published after it.

A service calls `enqueue("app.task", key=value)` inside its transaction; the row commits (or rolls
back) with the business data. Right after commit the web process tries to publish it; whatever is
still pending is published by the relay (`manage.py relay_outbox`). Nothing waits on the broker in a
request beyond a short connection timeout, and nothing is lost while the broker is away.
"""
