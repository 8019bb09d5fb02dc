"""factory-boy factories of the platform's models."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from events.models import Event
from participants.models import User

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
