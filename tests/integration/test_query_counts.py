"""Reads run a fixed number of queries, whatever the page size."""

import pytest

from tests.factories import EnrollmentFactory, EventFactory, UserFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def crowded():
    events = EventFactory.create_batch(30, capacity=200)
    users = UserFactory.create_batch(30)
    # 150 seats, written by the factory: these tests count the reads' queries, not the enrollments'.
    for user in users:
        for event in events[:5]:
            EnrollmentFactory(event=event, participant=user)
    return events, users


@pytest.mark.parametrize("page_size", [1, 10, 100])
def test_event_list_and_detail(participant_api, crowded, page_size, django_assert_num_queries):
    # count + page (reads trust the signed token: no account query); the cache starts empty
    with django_assert_num_queries(2):
        response = participant_api.get(f"/api/v1/events/?page_size={page_size}")
    assert len(response.json()["results"]) == min(page_size, 30)
    with django_assert_num_queries(1):  # the event
        participant_api.get(f"/api/v1/events/{crowded[0][0].pk}/")


@pytest.mark.parametrize("page_size", [1, 100])
def test_enrollment_lists(admin_api, crowded, page_size, django_assert_num_queries):
    events, users = crowded
    with django_assert_num_queries(4):  # auth user + event exists + count + page
        response = admin_api.get(f"/api/v1/events/{events[0].pk}/participants/?page_size={page_size}")
    assert len(response.json()["results"]) == min(page_size, 30)
    participant_api = client_for(users[0])
    with django_assert_num_queries(3):
        participant_api.get(f"/api/v1/me/enrollments/?page_size={page_size}")
    with django_assert_num_queries(4):
        admin_api.get(f"/api/v1/participants/{users[0].pk}/events/?page_size={page_size}")
    with django_assert_num_queries(3):
        admin_api.get(f"/api/v1/participants/?page_size={page_size}")
