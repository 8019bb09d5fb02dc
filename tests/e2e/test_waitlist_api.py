"""The waiting list and queued admission through HTTP, as participants and admins use them."""

import datetime as dt

import pytest
from django.utils import timezone

from events import services
from events.models import AdmissionRequest, Enrollment, Event, WaitlistEntry
from notifications.models import Notification
from tests.factories import EventFactory, UserFactory, WaitlistEntryFactory
from tests.helpers import assert_problem, client_for

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = "/api/v1/events/"


def full_event(capacity=1, **over):
    event = EventFactory(capacity=capacity, **over)
    for user in UserFactory.create_batch(capacity):
        services.enroll(event_id=event.pk, participant_id=user.pk)
    return event


def test_join_see_and_leave_the_waiting_list(participant_api, participant):
    event = full_event()
    joined = participant_api.post(f"{EVENTS}{event.pk}/waitlist/")
    assert joined.status_code == 201, joined.content
    body = joined.json()
    assert set(body) == {"event", "participant", "position", "joined_at"}
    assert (body["event"], body["participant"], body["position"]) == (event.pk, participant.pk, 1)

    mine = participant_api.get(f"{EVENTS}{event.pk}/waitlist/me/")
    assert mine.status_code == 200 and mine.json()["position"] == 1
    status = participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/").json()
    assert (status["status"], status["position"]) == ("waitlisted", 1)
    assert participant_api.get(f"{EVENTS}{event.pk}/").json()["waitlist_count"] == 1
    assert Notification.objects.filter(user=participant, kind="waitlisted").exists()

    assert participant_api.delete(f"{EVENTS}{event.pk}/waitlist/me/").status_code == 204
    assert_problem(participant_api.get(f"{EVENTS}{event.pk}/waitlist/me/"), 404, "not_found")
    assert_problem(participant_api.delete(f"{EVENTS}{event.pk}/waitlist/me/"), 404, "not_found")
    assert participant_api.get(f"{EVENTS}{event.pk}/").json()["waitlist_count"] == 0


def test_waiting_list_refusals(participant_api, participant):
    open_event = EventFactory(capacity=2)
    assert_problem(participant_api.post(f"{EVENTS}{open_event.pk}/waitlist/"), 409, "seats_available")
    event = full_event()
    assert participant_api.post(f"{EVENTS}{event.pk}/waitlist/").status_code == 201
    assert_problem(participant_api.post(f"{EVENTS}{event.pk}/waitlist/"), 409, "already_waitlisted")
    holder = Enrollment.objects.filter(event=event).first().participant
    assert_problem(client_for(holder).post(f"{EVENTS}{event.pk}/waitlist/"), 409, "already_enrolled")
    started = full_event()
    Event.objects.filter(pk=started.pk).update(date=timezone.localdate() - dt.timedelta(days=1))
    assert_problem(participant_api.post(f"{EVENTS}{started.pk}/waitlist/"), 409, "event_closed")
    assert_problem(participant_api.post(f"{EVENTS}999999/waitlist/"), 404, "not_found")
    assert_problem(
        participant_api.post(f"{EVENTS}{event.pk}/waitlist/", {"x": 1}, format="json"),
        400,
        "validation_error",
    )
    assert_problem(participant_api.get(f"{EVENTS}{event.pk}/waitlist/"), 403, "permission_denied")
    assert_problem(client_for(None).post(f"{EVENTS}{event.pk}/waitlist/"), 401, "not_authenticated")


def test_positions_have_no_gaps_after_someone_leaves(admin_api):
    event = full_event()
    waiting = UserFactory.create_batch(4)
    for user in waiting:
        assert client_for(user).post(f"{EVENTS}{event.pk}/waitlist/").status_code == 201
    assert client_for(waiting[1]).delete(f"{EVENTS}{event.pk}/waitlist/me/").status_code == 204
    listed = admin_api.get(f"{EVENTS}{event.pk}/waitlist/").json()
    assert listed["count"] == 3
    assert [(r["participant"]["id"], r["position"]) for r in listed["results"]] == [
        (waiting[0].pk, 1),
        (waiting[2].pk, 2),
        (waiting[3].pk, 3),
    ]
    assert set(listed["results"][0]["participant"]) == {"id", "email", "full_name"}
    assert client_for(waiting[3]).get(f"{EVENTS}{event.pk}/waitlist/me/").json()["position"] == 3
    page2 = admin_api.get(f"{EVENTS}{event.pk}/waitlist/?page=2&page_size=2").json()
    assert [r["position"] for r in page2["results"]] == [3]


def test_admin_puts_a_participant_on_the_waiting_list(admin_api):
    event = full_event()
    user = UserFactory()
    answer = admin_api.post(f"{EVENTS}{event.pk}/waitlist/", {"participant": user.pk}, format="json")
    assert answer.status_code == 201 and answer.json()["participant"] == user.pk
    assert_problem(admin_api.post(f"{EVENTS}{event.pk}/waitlist/"), 400, "validation_error")


def test_a_cancellation_promotes_the_head_of_the_list():
    event = full_event(capacity=1)
    holder = Enrollment.objects.get(event=event).participant
    first, second = UserFactory.create_batch(2)
    for user in (first, second):
        assert client_for(user).post(f"{EVENTS}{event.pk}/waitlist/").status_code == 201
    assert client_for(holder).delete(f"{EVENTS}{event.pk}/enrollments/me/").status_code == 204

    status = client_for(first).get(f"{EVENTS}{event.pk}/enrollments/me/").json()
    assert status["status"] == "confirmed" and status["position"] is None
    assert client_for(second).get(f"{EVENTS}{event.pk}/waitlist/me/").json()["position"] == 1
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (1, 1)
    assert Notification.objects.filter(user=first, kind="waitlist_promoted").exists()


def test_admin_removal_and_capacity_increase_promote(admin_api):
    event = full_event(capacity=1)
    holder = Enrollment.objects.get(event=event).participant
    waiting = [entry.participant for entry in WaitlistEntryFactory.create_batch(3, event=event)]
    assert admin_api.delete(f"{EVENTS}{event.pk}/participants/{holder.pk}/").status_code == 204
    assert admin_api.patch(f"{EVENTS}{event.pk}/", {"capacity": 3}, format="json").status_code == 200
    enrolled = set(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True))
    assert enrolled == {u.pk for u in waiting}
    body = admin_api.get(f"{EVENTS}{event.pk}/").json()
    assert (body["enrolled_count"], body["waitlist_count"], body["seats_left"]) == (3, 0, 0)


def test_deleting_a_participant_promotes_the_next(admin_api):
    event = full_event(capacity=1)
    holder = Enrollment.objects.get(event=event).participant
    waiting = UserFactory()
    client_for(waiting).post(f"{EVENTS}{event.pk}/waitlist/")
    assert admin_api.delete(f"/api/v1/participants/{holder.pk}/").status_code == 204
    assert list(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True)) == [
        waiting.pk
    ]
    event.refresh_from_db()
    assert (event.enrolled_count, event.waitlist_count) == (1, 0)


def test_no_promotion_once_the_event_has_started():
    event = full_event(capacity=1)
    holder = Enrollment.objects.get(event=event).participant
    waiting = UserFactory()
    services.join_waitlist(event_id=event.pk, participant_id=waiting.pk)
    Event.objects.filter(pk=event.pk).update(date=timezone.localdate() - dt.timedelta(days=1))
    services.remove_participant(event_id=event.pk, participant_id=holder.pk)
    assert WaitlistEntry.objects.filter(event=event, participant=waiting).exists()
    assert not Enrollment.objects.filter(event=event).exists()


def test_direct_event_status_and_404(participant_api, participant):
    event = EventFactory(capacity=2)
    assert_problem(participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/"), 404, "not_found")
    assert_problem(participant_api.get(f"{EVENTS}999999/enrollments/me/"), 404, "not_found")
    participant_api.post(f"{EVENTS}{event.pk}/enrollments/")
    status = participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/").json()
    assert set(status) == {"status", "queued_at", "decided_at", "position"}
    assert status["status"] == "confirmed" and status["decided_at"]


# --- Queued admission ----------------------------------------------------------------------------


def test_admin_sets_queued_admission_and_bad_values_are_400(admin_api):
    event = EventFactory()
    answer = admin_api.patch(f"{EVENTS}{event.pk}/", {"admission": "queue"}, format="json")
    assert answer.status_code == 200 and answer.json()["admission"] == "queue"
    assert_problem(
        admin_api.patch(f"{EVENTS}{event.pk}/", {"admission": "lottery"}, format="json"),
        400,
        "validation_error",
    )
    assert Event.objects.get(pk=event.pk).admission == "queue"


def test_queued_enrollment_answers_202_then_the_decision(participant_api, participant):
    event = EventFactory(capacity=1, admission="queue")
    answer = participant_api.post(f"{EVENTS}{event.pk}/enrollments/")
    assert answer.status_code == 202, answer.content
    assert answer["Location"] == f"{EVENTS}{event.pk}/enrollments/me/"
    body = answer.json()
    assert (body["status"], body["event"], body["participant"]) == ("pending", event.pk, participant.pk)
    assert body["queued_at"]
    # The embedded default decides in-process right after the commit.
    status = participant_api.get(answer["Location"]).json()
    assert status["status"] == "confirmed" and status["decided_at"] and status["queued_at"]
    assert_problem(participant_api.post(f"{EVENTS}{event.pk}/enrollments/"), 409, "already_enrolled")
    assert Notification.objects.filter(user=participant, kind="enrollment_confirmed").count() == 1

    late = UserFactory()
    assert client_for(late).post(f"{EVENTS}{event.pk}/enrollments/").status_code == 202
    status = client_for(late).get(f"{EVENTS}{event.pk}/enrollments/me/").json()
    assert (status["status"], status["position"]) == ("waitlisted", 1)
    assert_problem(client_for(late).post(f"{EVENTS}{event.pk}/enrollments/"), 409, "already_waitlisted")
    assert Notification.objects.filter(user=late, kind="waitlisted").exists()


def test_queued_refusals_and_repeated_pending_request(participant_api, participant):
    started = EventFactory(admission="queue", date=timezone.localdate() - dt.timedelta(days=1))
    assert_problem(participant_api.post(f"{EVENTS}{started.pk}/enrollments/"), 409, "event_closed")
    event = EventFactory(capacity=5, admission="queue")
    # A request still pending (not decided yet): asking again answers the same request.
    pending = AdmissionRequest.objects.create(event=event, participant=participant)
    again = participant_api.post(f"{EVENTS}{event.pk}/enrollments/")
    assert again.status_code == 202
    assert (
        again.json()["queued_at"] == pending.queued_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        or again.json()["queued_at"]
    )
    assert AdmissionRequest.objects.filter(event=event).count() == 1
    assert participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/").json()["status"] == "pending"


def test_a_queued_events_list_is_joined_through_the_queue_while_requests_are_pending(
    participant_api, participant, monkeypatch
):
    """Joining the list directly would go ahead of requests queued earlier and not yet decided:
    the answer is "enroll instead", which queues the participant behind them."""
    from events import admission, wakeups

    monkeypatch.setattr(wakeups, "wake", lambda event_id: None)  # requests stay pending meanwhile
    event = full_event(admission="queue")
    earlier = UserFactory()
    assert client_for(earlier).post(f"{EVENTS}{event.pk}/enrollments/").status_code == 202
    refused = participant_api.post(f"{EVENTS}{event.pk}/waitlist/")
    assert_problem(refused, 409, "seats_available")
    assert "enroll to take your place in the queue" in refused.json()["detail"]
    # The same once the event is switched to direct: its queued requests are still decided first.
    Event.objects.filter(pk=event.pk).update(admission="direct")
    assert_problem(participant_api.post(f"{EVENTS}{event.pk}/waitlist/"), 409, "seats_available")
    Event.objects.filter(pk=event.pk).update(admission="queue")
    assert participant_api.post(f"{EVENTS}{event.pk}/enrollments/").status_code == 202
    assert admission.decide_pending(event_ids=[event.pk]) == 2
    positions = [
        client_for(user).get(f"{EVENTS}{event.pk}/enrollments/me/").json()["position"]
        for user in (earlier, participant)
    ]
    assert positions == [1, 2]
    # With nothing pending, the list is joined directly, at its end.
    latest = client_for(UserFactory()).post(f"{EVENTS}{event.pk}/waitlist/")
    assert latest.status_code == 201 and latest.json()["position"] == 3


def test_asking_again_after_an_admin_gave_the_pending_participant_a_seat(participant_api, participant):
    event = EventFactory(capacity=5, admission="queue")
    AdmissionRequest.objects.create(event=event, participant=participant)  # not decided yet
    services.enroll(event_id=event.pk, participant_id=participant.pk)  # the admin's "Enroll participants"
    assert_problem(participant_api.post(f"{EVENTS}{event.pk}/enrollments/"), 409, "already_enrolled")
    assert participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/").json()["status"] == "confirmed"


def test_a_cancelled_queued_participant_can_ask_again(participant_api):
    event = EventFactory(capacity=1, admission="queue")
    assert participant_api.post(f"{EVENTS}{event.pk}/enrollments/").status_code == 202
    assert participant_api.delete(f"{EVENTS}{event.pk}/enrollments/me/").status_code == 204
    assert_problem(participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/"), 404, "not_found")
    assert participant_api.post(f"{EVENTS}{event.pk}/enrollments/").status_code == 202
    assert participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/").json()["status"] == "confirmed"


def test_a_pending_request_is_withdrawn_and_never_decided(participant_api, participant, monkeypatch):
    from events import admission, wakeups

    monkeypatch.setattr(wakeups, "wake", lambda event_id: None)  # between the 202 and the decision
    event = EventFactory(capacity=1, admission="queue")
    assert participant_api.post(f"{EVENTS}{event.pk}/enrollments/").status_code == 202
    assert participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/").json()["status"] == "pending"
    assert participant_api.delete(f"{EVENTS}{event.pk}/enrollments/me/").status_code == 204
    assert_problem(participant_api.get(f"{EVENTS}{event.pk}/enrollments/me/"), 404, "not_found")
    assert admission.decide_pending(event_ids=[event.pk]) == 0  # nothing left to decide
    assert not Enrollment.objects.filter(event=event).exists()
    assert not Notification.objects.filter(user=participant).exists()
    # Once there is nothing to withdraw, the answer is the contract's 404.
    assert_problem(participant_api.delete(f"{EVENTS}{event.pk}/enrollments/me/"), 404, "not_found")


def test_requests_closed_by_a_start_moved_into_the_past_are_decided_once_it_is_moved_back(
    admin_api, monkeypatch
):
    from events import admission, wakeups

    woken = []
    monkeypatch.setattr(wakeups, "wake", woken.append)
    event = EventFactory(capacity=1, admission="queue")
    first, second = UserFactory.create_batch(2)
    for user in (first, second):
        assert client_for(user).post(f"{EVENTS}{event.pk}/enrollments/").status_code == 202
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    assert admin_api.patch(f"{EVENTS}{event.pk}/", {"date": yesterday}).status_code == 200
    admission.decide_pending(event_ids=[event.pk])
    assert client_for(first).get(f"{EVENTS}{event.pk}/enrollments/me/").json()["status"] == "closed"
    woken.clear()

    # A mistake, mended: the event starts in ten days again, and the requests stand in their places.
    later = (timezone.localdate() + dt.timedelta(days=10)).isoformat()
    assert admin_api.patch(f"{EVENTS}{event.pk}/", {"date": later}).status_code == 200
    assert woken == [event.pk]
    assert client_for(first).get(f"{EVENTS}{event.pk}/enrollments/me/").json()["status"] == "pending"
    admission.decide_pending(event_ids=[event.pk])
    assert client_for(first).get(f"{EVENTS}{event.pk}/enrollments/me/").json()["status"] == "confirmed"
    status = client_for(second).get(f"{EVENTS}{event.pk}/enrollments/me/").json()
    assert (status["status"], status["position"]) == ("waitlisted", 1)
    # Edits that leave the start alone reopen nothing.
    woken.clear()
    assert admin_api.patch(f"{EVENTS}{event.pk}/", {"title": "Renamed"}).status_code == 200
    assert woken == []


def test_a_request_that_cannot_be_kept_is_503_with_retry_after(participant_api, monkeypatch):
    from django.db import OperationalError

    from events import admission

    event = EventFactory(capacity=5, admission="queue")

    def database_away(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(admission, "request_admission", database_away)
    answer = participant_api.post(f"{EVENTS}{event.pk}/enrollments/")
    body = assert_problem(answer, 503, "service_unavailable")
    assert answer["Retry-After"] == "5" and "try again" in body["detail"]
    assert not AdmissionRequest.objects.exists()


def test_a_change_of_admission_is_seen_at_once_by_the_process_that_made_it(admin_api, participant_api):
    event = EventFactory(capacity=5, admission="queue")
    assert participant_api.post(f"{EVENTS}{event.pk}/enrollments/").status_code == 202  # remembered queued
    assert admin_api.patch(f"{EVENTS}{event.pk}/", {"admission": "direct"}, format="json").status_code == 200
    assert client_for(UserFactory()).post(f"{EVENTS}{event.pk}/enrollments/").status_code == 201
