"""An admin ends a participant's calendar feed URL (one that leaked, say) from the Django admin."""

from urllib.parse import urlsplit

import pytest
from django.test import Client

from participants.models import User
from tests.factories import AdminFactory, UserFactory
from tests.helpers import assert_problem, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser() -> Client:
    client = Client()
    client.force_login(AdminFactory())
    return client


def feed_path(url: str) -> str:
    """The feed URL without scheme and host, as the test client requests it."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_the_page_says_whether_a_feed_is_live_without_showing_its_secret(browser):
    person = UserFactory()
    page = browser.get(f"/admin/participants/participant/{person.pk}/change/").content.decode()
    assert "Calendar feed" in page and "none" in page
    url = client_for(person).get("/api/v1/me/calendar/").json()["url"]
    token = User.objects.get(pk=person.pk).calendar_token
    page = browser.get(f"/admin/participants/participant/{person.pk}/change/").content.decode()
    assert "active" in page and token not in page and token in url


def test_revoking_ends_the_old_url_and_the_next_request_makes_a_new_one(browser, anon):
    leaked, other = UserFactory(), UserFactory()
    old = client_for(leaked).get("/api/v1/me/calendar/").json()["url"]
    kept = client_for(other).get("/api/v1/me/calendar/").json()["url"]
    assert anon.get(feed_path(old)).status_code == 200

    answer = browser.post(
        "/admin/participants/participant/",
        {"action": "revoke_calendar_feeds", "_selected_action": [leaked.pk]},
        follow=True,
    )
    assert "1 calendar feed URL revoked" in answer.content.decode()
    assert_problem(anon.get(feed_path(old)), 404, "not_found")
    assert anon.get(feed_path(kept)).status_code == 200  # only the selected account's
    new = client_for(leaked).get("/api/v1/me/calendar/").json()["url"]
    assert new != old and anon.get(feed_path(new)).status_code == 200
