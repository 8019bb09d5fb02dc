"""factory-boy factories of the platform's models."""

from __future__ import annotations

import datetime as dt
from typing import Any

import factory
from django.db.models import F
from django.utils import timezone
from factory.django import DjangoModelFactory

from config.outbox.models import OutboxMessage
from events.models import Enrollment, Event, WaitlistEntry
from notifications.domain import Kind
from notifications.models import Notification
from participants.models import User
from reports.models import Report

PASSWORD = "Str0ng-Passw0rd!"


class UserFactory(DjangoModelFactory):
    """A participant with the password PASSWORD."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    phone = ""
    password = factory.django.Password(PASSWORD)


class AdminFactory(UserFactory):
    email = factory.Sequence(lambda n: f"admin{n}@example.com")
    is_staff = True
    is_superuser = True


class EventFactory(DjangoModelFactory):
    """A future event with free seats."""

    class Meta:
        model = Event

    title = factory.Sequence(lambda n: f"Event {n}")
    description = "A talk about things."
    date = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=30))
    time = dt.time(10, 30)
    location = "Auditorium A"
    capacity = 10


# --- Rows the services write, for seeding ------------------------------------------------------
# These write past the services (no notification, outbox message, live update or cache
# invalidation): a test about enrolling, waiting or reporting goes through the API or the services;
# a test that only needs such rows to exist uses these. Fields with model defaults that a test does
# not care about are left to the model.


class EnrollmentFactory(DjangoModelFactory):
    """A seat held. The event's enrolled_count follows, as the services keep it (and the database's
    "not overbooked" constraint still refuses a seat past the capacity)."""

    class Meta:
        model = Enrollment

    event = factory.SubFactory(EventFactory)
    participant = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class: type[Enrollment], *args: Any, **kwargs: Any) -> Enrollment:
        enrollment = super()._create(model_class, *args, **kwargs)
        _count(enrollment.event, "enrolled_count")
        return enrollment


class WaitlistEntryFactory(DjangoModelFactory):
    """A place at the end of the event's waiting list (positions follow the ids); the event's
    waitlist_count follows."""

    class Meta:
        model = WaitlistEntry

    event = factory.SubFactory(EventFactory)
    participant = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class: type[WaitlistEntry], *args: Any, **kwargs: Any) -> WaitlistEntry:
        entry = super()._create(model_class, *args, **kwargs)
        _count(entry.event, "waitlist_count")
        return entry


def _count(event: Event, counter: str) -> None:
    """One more on the event's counter, in the database (atomic, as the services do it) and on the
    instance the caller holds."""
    Event.objects.filter(pk=event.pk).update(**{counter: F(counter) + 1})
    event.refresh_from_db(fields=[counter])


class NotificationFactory(DjangoModelFactory):
    """An e-mail as the notifications worker records it: queued, to an address of no account
    unless `user` is given (then to the account's address)."""

    class Meta:
        model = Notification

    kind = Kind.ENROLLMENT_CONFIRMED.value
    user = None
    to_email = factory.LazyAttributeSequence(lambda o, n: o.user.email if o.user else f"to{n}@example.com")
    subject = "Subject"
    body = "Body"


class ReportFactory(DjangoModelFactory):
    """A report as requested (pending, nothing built); pass `status` for the other stages."""

    class Meta:
        model = Report

    event = factory.SubFactory(EventFactory)


class OutboxMessageFactory(DjangoModelFactory):
    """An outbox message recorded and not published, as a crashed process leaves it."""

    class Meta:
        model = OutboxMessage

    task = "tests.noop"
    kwargs = factory.LazyFunction(dict)
