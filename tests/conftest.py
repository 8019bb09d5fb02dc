from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from events.models import Event
from participants.models import User
from tests.factories import AdminFactory, EventFactory, UserFactory

SERVICES = {
    "DATABASE_URL": "PostgreSQL",
    "REDIS_URL": "Redis",
    "CELERY_BROKER_URL": "RabbitMQ",
}


def needs_service(variable: str) -> pytest.MarkDecorator:
    """Skips (with its reason) a test that needs a real service whose URL is not set."""
    return pytest.mark.skipif(
        not os.environ.get(variable),
        reason=f"needs {SERVICES[variable]}: set {variable} (the services pass of CI)",
    )


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttle counters and cached answers must not leak from one test into the next."""
    cache.clear()
    yield
    cache.clear()


def client_for(user: User | None) -> APIClient:
    api = APIClient()
    if user is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return api


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def participant(db) -> User:
    return UserFactory()


@pytest.fixture
def admin(db) -> User:
    return AdminFactory()


@pytest.fixture
def participant_api(participant) -> APIClient:
    return client_for(participant)


@pytest.fixture
def admin_api(admin) -> APIClient:
    return client_for(admin)


@pytest.fixture
def event(db) -> Event:
    return EventFactory()


@pytest.fixture
def make_participants(db) -> Callable[[int], list[User]]:
    return lambda n: UserFactory.create_batch(n)


def assert_problem(response, status: int, code: str) -> dict:
    """The contract's error shape, with this status and code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    return body
