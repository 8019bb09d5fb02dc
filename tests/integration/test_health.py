import pytest

from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    }
}


def test_live(anon):
    response = anon.get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_when_everything_answers(anon):
    response = anon.get("/health/ready")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


def test_not_ready_names_the_broker(anon, settings):
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"
    settings.BROKER_PROBE_TIMEOUT = 0.5
    body = assert_problem(anon.get("/health/ready"), 503, "service_unavailable")
    assert body["failed"] == ["broker"]
    assert "broker" in body["detail"]


def test_not_ready_names_the_cache(anon, settings):
    settings.CACHES = DEAD_REDIS
    body = assert_problem(anon.get("/health/ready"), 503, "service_unavailable")
    assert body["failed"] == ["cache"]


def test_probes_take_only_get(anon):
    assert_problem(anon.post("/health/live"), 405, "method_not_allowed")
