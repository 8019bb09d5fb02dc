"""An account that can no longer take part gives back what it holds: deleted, deactivated, or made
an administrator's. Its seats go to the heads of the waiting lists, its places and pending requests
go, and the counts stay exact also when the participant's own cancellation runs at the same moment
(events.receivers, events.services.withdraw_from_all_events)."""

from __future__ import annotations

import functools
import time

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from config.celery import app as celery_app
from events import admission, selectors, services, wakeups
from events.models import AdmissionRequest, Enrollment, Event, WaitlistEntry
from participants import services as participant_services
from participants.domain import ParticipantNotFound
from participants.models import User
from participants.proxies import ACCOUNT_SENDERS
from reports.models import Report
from tests.factories import AdminFactory, EventFactory, NotificationFactory, ReportFactory, UserFactory
from tests.helpers import client_for, form_as_posted, in_another_thread, needs_service, while_held

pytestmark = pytest.mark.django_db(transaction=True)


def holdings(user):
    return (
        set(Enrollment.objects.filter(participant=user).values_list("event_id", flat=True)),
        set(WaitlistEntry.objects.filter(participant=user).values_list("event_id", flat=True)),
        set(AdmissionRequest.objects.filter(participant=user).values_list("event_id", flat=True)),
    )


def assert_counts_exact(*events):
    for event in events:
        event.refresh_from_db()
        assert event.enrolled_count == Enrollment.objects.filter(event=event).count() <= event.capacity
        assert event.waitlist_count == WaitlistEntry.objects.filter(event=event).count()


@pytest.fixture
def everything_held(monkeypatch):
    """A participant with a seat (a waiting list behind it), a place on another event's waiting
    list (someone behind them), and a request still pending on a queued event."""
    monkeypatch.setattr(wakeups, "wake", lambda event_id: None)  # the request stays pending
    leaving, head, behind, holder = UserFactory.create_batch(4)
    seated = EventFactory(capacity=1)
    services.enroll(event_id=seated.pk, participant_id=leaving.pk)
    services.join_waitlist(event_id=seated.pk, participant_id=head.pk)
    full = EventFactory(capacity=1)
    services.enroll(event_id=full.pk, participant_id=holder.pk)
    services.join_waitlist(event_id=full.pk, participant_id=leaving.pk)
    services.join_waitlist(event_id=full.pk, participant_id=behind.pk)
    queued = EventFactory(capacity=5, admission="queue")
    assert client_for(leaving).post(f"/api/v1/events/{queued.pk}/enrollments/").status_code == 202
    return leaving, head, behind, seated, full, queued


def assert_withdrawn(leaving, head, behind, seated, full, queued):
    assert holdings(leaving) == (set(), set(), set())
    assert Enrollment.objects.filter(event=seated, participant=head).exists()  # the seat went on
    assert selectors.waitlist_place(event_id=full.pk, participant_id=behind.pk).position == 1
    admission.decide_pending(event_ids=[queued.pk])
    assert not Enrollment.objects.filter(event=queued).exists()  # the request went too
    assert_counts_exact(seated, full, queued)


def test_a_deactivated_participant_gives_back_seats_places_and_requests(everything_held):
    leaving = everything_held[0]
    leaving.is_active = False
    leaving.save()
    assert_withdrawn(*everything_held)


def test_a_participant_made_an_administrator_gives_them_back(everything_held, monkeypatch):
    leaving = everything_held[0]
    monkeypatch.setenv("ADMIN_EMAIL", leaving.email)  # the bootstrap takes an existing account
    monkeypatch.setenv("ADMIN_PASSWORD", "A-l0ng-enough-passw0rd")
    call_command("ensure_admin")
    assert User.objects.get(pk=leaving.pk).is_staff
    assert_withdrawn(*everything_held)


def test_deactivating_in_the_admin_gives_them_back(everything_held):
    leaving = everything_held[0]
    browser = Client()
    browser.force_login(AdminFactory())
    page = browser.get(f"/admin/participants/participant/{leaving.pk}/change/").content.decode()
    form = form_as_posted(page)  # with "active" unticked below
    assert form.pop("is_active") == "on"
    response = browser.post(f"/admin/participants/participant/{leaving.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not User.objects.get(pk=leaving.pk).is_active
    assert_withdrawn(*everything_held)


@pytest.mark.parametrize("retired", [{"is_active": False}, {"is_staff": True}])
def test_the_beat_sweep_withdraws_an_account_retired_without_a_signal(everything_held, retired):
    # QuerySet.update() sends no signal (nor does a seat committed as the account was retired):
    # the sweep finds what such an account still holds and gives it back like a retirement.
    leaving, head, behind, seated, full, queued = everything_held
    holder = Enrollment.objects.get(event=full).participant
    User.objects.filter(pk=leaving.pk).update(**retired)
    assert holdings(leaving) != (set(), set(), set())
    entry = settings.CELERY_BEAT_SCHEDULE["withdraw-retired-accounts"]
    assert entry["task"] == services.WITHDRAW_RETIRED_TASK
    assert celery_app.tasks[entry["task"]].apply().get() == 1
    assert_withdrawn(*everything_held)
    assert Enrollment.objects.filter(event=full, participant=holder).exists()  # an active one keeps it
    assert celery_app.tasks[entry["task"]].apply().get() == 0  # nothing left to withdraw


def test_every_proxy_of_the_account_model_is_listened_to():
    """A proxy added later and not listed would delete or deactivate accounts unheard."""
    proxies = {
        model for model in apps.get_models() if model._meta.proxy and model._meta.concrete_model is User
    }
    assert set(ACCOUNT_SENDERS) == {User, *proxies}


@pytest.mark.parametrize("sender", ACCOUNT_SENDERS, ids=lambda model: model.__name__)
def test_an_account_deleted_through_any_of_its_models_gives_them_back(everything_held, sender):
    # Its own rows would go by cascade anyway: what counts is the seat and place passed on.
    sender._default_manager.get(pk=everything_held[0].pk).delete()
    assert_withdrawn(*everything_held)


@pytest.mark.parametrize("sender", ACCOUNT_SENDERS, ids=lambda model: model.__name__)
def test_an_account_deactivated_through_any_of_its_models_gives_them_back(everything_held, sender):
    leaving = sender._default_manager.get(pk=everything_held[0].pk)
    leaving.is_active = False
    leaving.save()
    assert_withdrawn(*everything_held)


def test_saving_an_account_that_took_no_part_changes_nothing(everything_held):
    leaving = everything_held[0]
    leaving.full_name = "Renamed"  # an active participant's save: keeps everything
    leaving.save()
    assert holdings(leaving) != (set(), set(), set())
    inactive = UserFactory(is_active=False)
    inactive.full_name = "Still inactive"
    inactive.save()  # was not a participant who could hold anything: nothing to withdraw
    assert User.objects.get(pk=inactive.pk).full_name == "Still inactive"


# --- The participant's own change at the same moment (PostgreSQL's concurrent transactions) ----


def one_seat_two_waiting():
    """An event of one seat, its holder, and the first and second on its waiting list."""
    event = EventFactory(capacity=1)
    holder, first, second = UserFactory.create_batch(3)
    services.enroll(event_id=event.pk, participant_id=holder.pk)
    services.join_waitlist(event_id=event.pk, participant_id=first.pk)
    services.join_waitlist(event_id=event.pk, participant_id=second.pk)
    return event, holder, first, second


@needs_service("DATABASE_URL")
def test_deleting_an_account_while_its_owner_cancels_gives_the_seat_once():
    event, owner, first, second = one_seat_two_waiting()
    errors = while_held(
        lambda: services.cancel_enrollment(event_id=event.pk, participant_id=owner.pk),
        lambda: participant_services.delete_participant(participant_id=owner.pk),
    )
    assert not errors
    assert list(Enrollment.objects.filter(event=event).values_list("participant_id", flat=True)) == [first.pk]
    assert WaitlistEntry.objects.get(event=event).participant_id == second.pk
    assert_counts_exact(event)


@needs_service("DATABASE_URL")
def test_deleting_an_account_while_its_owner_leaves_the_waiting_list_counts_it_once():
    event, holder, owner, behind = one_seat_two_waiting()
    errors = while_held(
        lambda: services.leave_waitlist(event_id=event.pk, participant_id=owner.pk),
        lambda: participant_services.delete_participant(participant_id=owner.pk),
    )
    assert not errors
    assert_counts_exact(event)
    services.cancel_enrollment(event_id=event.pk, participant_id=holder.pk)
    assert Enrollment.objects.filter(event=event, participant=behind).exists()  # the seat reached them
    assert Event.objects.get(pk=event.pk).waitlist_count == 0


# --- A seat being given at the same moment (PostgreSQL: the order in which rows are locked) -------


@pytest.fixture
def first_in_queue_then_second(monkeypatch):
    """A queued event of one seat and two pending requests: the first will get the seat, the second
    a place on the waiting list."""
    monkeypatch.setattr(wakeups, "wake", lambda event_id: None)  # pending until decided here
    monkeypatch.setattr(admission, "DECIDE_INTERVAL_SECONDS", 0)
    event = EventFactory(capacity=1, admission="queue")
    first, second = UserFactory.create_batch(2)
    for user in (first, second):
        assert client_for(user).post(f"/api/v1/events/{event.pk}/enrollments/").status_code == 202
    return event, first, second


def assert_seat_went_on(event, first, second):
    assert holdings(first) == (set(), set(), set())
    seated = Enrollment.objects.filter(event=event).values_list("participant_id", flat=True)
    assert list(seated) == [second.pk]
    assert not WaitlistEntry.objects.filter(event=event).exists()
    assert_counts_exact(event)


@needs_service("DATABASE_URL")
def test_deleting_an_account_while_the_consumer_seats_it_waits_for_the_seat_then_frees_it(
    first_in_queue_then_second,
):
    # The consumer holds the event's row until its commit, where the seat's foreign key takes a
    # key-share lock on the account: an account locked before the event deadlocked with it.
    event, first, second = first_in_queue_then_second
    errors = while_held(
        lambda: admission.decide_pending(event_ids=[event.pk]),
        lambda: participant_services.delete_participant(participant_id=first.pk),
    )
    assert not errors
    assert not User.objects.filter(pk=first.pk).exists()
    assert_seat_went_on(event, first, second)


@needs_service("DATABASE_URL")
def test_making_a_participant_an_admin_while_the_consumer_seats_them_frees_the_seat(
    first_in_queue_then_second,
):
    event, first, second = first_in_queue_then_second
    errors = while_held(
        lambda: admission.decide_pending(event_ids=[event.pk]),
        lambda: participant_services.ensure_admin(email=first.email, password="A-long-new-passw0rd"),
    )
    assert not errors
    assert User.objects.get(pk=first.pk).is_staff
    assert_seat_went_on(event, first, second)


def seat_holder_and_another_event():
    """one_seat_two_waiting()'s event, its holder and the first waiting; another event with seats
    left; and the holder's enrollment in it, to run when a test needs it."""
    event, holder, first, _ = one_seat_two_waiting()
    other = EventFactory(capacity=3)
    seat_there = functools.partial(services.enroll, event_id=other.pk, participant_id=holder.pk)
    return event, holder, first, other, seat_there


@needs_service("DATABASE_URL")
def test_a_seat_committed_while_the_withdrawal_locks_is_found_and_given_back(monkeypatch):
    # Committed after the withdrawal read where the account takes part, before it locked: the read
    # under the account's lock finds the new event, and the locks are taken again with it.
    event, holder, first, other, seat_elsewhere = seat_holder_and_another_event()
    real_read = services._events_held_by
    reads = []

    def read_then_seat_elsewhere(participant_id):
        held = real_read(participant_id)
        if not reads:
            assert in_another_thread(seat_elsewhere)() == []
        reads.append(held)
        return held

    monkeypatch.setattr(services, "_events_held_by", read_then_seat_elsewhere)
    participant_services.delete_participant(participant_id=holder.pk)
    assert reads == [{event.pk}, {event.pk, other.pk}, {event.pk, other.pk}]
    assert not Enrollment.objects.filter(participant_id=holder.pk).exists()
    assert Enrollment.objects.filter(event=event, participant=first).exists()
    assert_counts_exact(event, other)


@needs_service("DATABASE_URL")
def test_no_seat_can_be_taken_once_the_withdrawal_holds_the_account(monkeypatch):
    # A seat in another event, taken once the withdrawal holds the account's row, cannot commit
    # before the account is gone (its foreign key waits for the row): it fails, and no seat is
    # left uncounted. (Without the account's lock, the deletion's cascade removed it uncounted.)
    event, holder, first, other, seat_elsewhere = seat_holder_and_another_event()
    real_lock = services._lock_events_then_account
    seating = []

    def lock_then_seat_elsewhere(participant_id):
        events = real_lock(participant_id)
        seating.append(in_another_thread(seat_elsewhere))
        time.sleep(0.5)  # the seat's statement has run; its commit waits for the account's row
        return events

    monkeypatch.setattr(services, "_lock_events_then_account", lock_then_seat_elsewhere)
    participant_services.delete_participant(participant_id=holder.pk)
    assert len(seating[0]()) == 1  # the seat failed
    assert not Enrollment.objects.filter(participant_id=holder.pk).exists()
    assert_counts_exact(event, other)
    assert Event.objects.get(pk=other.pk).enrolled_count == 0


@needs_service("DATABASE_URL")
def test_deleting_an_admin_while_a_report_tells_them_waits_and_deadlocks_nothing():
    # A report's closing transaction holds the report's row and commits an e-mail to its admin (a
    # key-share lock on the account at commit); the admin's deletion sets the report's
    # requested_by to NULL, so waits for that row. An admin's account, which holds nothing, is not
    # locked first (locked, it deadlocked with the report), and the e-mail committed after the
    # deletion read what refers to the account is found by deleting again.
    admin = AdminFactory()
    report = ReportFactory(requested_by=admin)

    def report_closing():
        Report.objects.select_for_update().get(pk=report.pk)
        NotificationFactory(user=admin, kind="report_ready")

    errors = while_held(report_closing, lambda: participant_services.delete_admin(user_id=admin.pk))
    assert not errors
    assert not User.objects.filter(pk=admin.pk).exists()
    assert Report.objects.get(pk=report.pk).requested_by_id is None


def test_the_sweep_leaves_an_account_taken_back_before_its_turn(everything_held):
    # The sweep reads the retired accounts, then withdraws each under its lock: one taken back
    # (active again) in between keeps what it holds.
    leaving = everything_held[0]
    before = holdings(leaving)
    assert services.withdraw_from_all_events(participant_id=leaving.pk, only_if_retired=True) is None
    assert holdings(leaving) == before


def test_the_bootstrap_keeps_what_changed_on_the_account_meanwhile(monkeypatch):
    # ensure_admin reads the account without a lock and writes only the columns it sets.
    account = UserFactory(full_name="Old Name")
    real_set_password = User.set_password

    def set_password_while_renamed(user, password):
        real_set_password(user, password)
        User.objects.filter(pk=user.pk).update(full_name="New Name")  # another writer, meanwhile

    monkeypatch.setattr(User, "set_password", set_password_while_renamed)
    participant_services.ensure_admin(email=account.email, password="A-long-new-passw0rd")
    saved = User.objects.get(pk=account.pk)
    assert (saved.is_staff, saved.full_name) == (True, "New Name")


@needs_service("DATABASE_URL")
def test_an_account_made_an_admins_meanwhile_is_not_deleted_as_a_participants(monkeypatch):
    account = UserFactory()
    real_withdraw = services.withdraw_from_all_events

    def made_an_admin_first(**kwargs):
        # Committed by another transaction after the deletion read the account, before its lock.
        make_admin = functools.partial(User.objects.filter(pk=account.pk).update, is_staff=True)
        assert in_another_thread(make_admin)() == []
        return real_withdraw(**kwargs)

    monkeypatch.setattr(services, "withdraw_from_all_events", made_an_admin_first)
    with pytest.raises(ParticipantNotFound):
        participant_services.delete_participant(participant_id=account.pk)
    assert User.objects.filter(pk=account.pk, is_staff=True).exists()


def test_the_admins_deletion_deletes_an_account_as_what_it_is_now(monkeypatch):
    # The page read a participant's account; made an admin's since, it is deleted as one.
    account = UserFactory()
    real_delete = participant_services.delete_participant

    def made_an_admin_first(*, participant_id):
        User.objects.filter(pk=participant_id).update(is_staff=True)
        return real_delete(participant_id=participant_id)

    monkeypatch.setattr(participant_services, "delete_participant", made_an_admin_first)
    participant_services.delete_account(user_id=account.pk)
    assert not User.objects.filter(pk=account.pk).exists()


def test_the_admins_deletion_gives_a_participants_seat_on(everything_held):
    leaving = everything_held[0]
    participant_services.delete_account(user_id=leaving.pk)
    assert not User.objects.filter(pk=leaving.pk).exists()
    assert_withdrawn(*everything_held)
    participant_services.delete_account(user_id=leaving.pk)  # gone already: nothing to do
