import pytest
from django.core.management import CommandError, call_command

from events import services as event_services
from participants import services
from participants.models import User
from tests.factories import EventFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_register_normalizes_email_and_hashes_password():
    user = services.register_participant(
        email=" Zoe@Example.COM ", password="Str0ng-Passw0rd!", full_name="Zoe"
    )
    assert user.email == "zoe@example.com"
    assert user.check_password("Str0ng-Passw0rd!")
    assert user.password != "Str0ng-Passw0rd!"
    assert user.role == "participant"


def test_register_twice_is_email_taken_even_past_the_serializer():
    services.register_participant(email="a@example.com", password="x", full_name="A")
    with pytest.raises(services.EmailTaken) as err:
        services.register_participant(email="A@example.com", password="x", full_name="A")
    assert err.value.field == "email"
    assert User.objects.count() == 1


def test_delete_participant_frees_seats_and_refuses_admins():
    event = EventFactory(capacity=1)
    user = UserFactory()
    event_services.enroll(event_id=event.pk, participant_id=user.pk)
    services.delete_participant(participant_id=user.pk)
    event.refresh_from_db()
    assert event.enrolled_count == 0
    admin = UserFactory(is_staff=True)
    with pytest.raises(services.ParticipantNotFound):
        services.delete_participant(participant_id=admin.pk)


def test_ensure_admin_creates_then_updates(monkeypatch, capsys):
    monkeypatch.setenv("ADMIN_EMAIL", "Boss@Example.com")
    monkeypatch.setenv("ADMIN_PASSWORD", "First-Secret-1")
    call_command("ensure_admin")
    boss = User.objects.get(email="boss@example.com")
    assert boss.is_staff and boss.is_superuser and boss.check_password("First-Secret-1")
    assert boss.role == "admin"

    boss.is_staff = False
    boss.save()
    monkeypatch.setenv("ADMIN_PASSWORD", "Second-Secret-2")
    call_command("ensure_admin")
    boss.refresh_from_db()
    assert boss.is_staff and boss.check_password("Second-Secret-2")
    assert User.objects.count() == 1
    assert "Second-Secret-2" not in capsys.readouterr().out


def test_ensure_admin_without_both_variables_does_nothing(monkeypatch):
    monkeypatch.setenv("ADMIN_EMAIL", "boss@example.com")
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("change-me-admin-password", "placeholder"),  # .env.example's
        ("a", "too short"),
        ("password1", "too common"),
        ("12345678901", "entirely numeric"),
    ],
)
def test_ensure_admin_refuses_a_placeholder_or_weak_password(monkeypatch, password, reason):
    monkeypatch.setenv("ADMIN_EMAIL", "boss@example.com")
    monkeypatch.setenv("ADMIN_PASSWORD", password)
    with pytest.raises(CommandError, match=reason):
        call_command("ensure_admin")
    assert not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_new_password_is_hashed_before_the_account_is_locked(monkeypatch):
    # Hashing takes tens of milliseconds on purpose: inside the transaction that holds the
    # account's row, a seat being given to the account waited for it, holding its event's row.
    from django.db import connection

    user = UserFactory()
    real_make_password = services.make_password
    hashed_in_a_transaction = []

    def make_password(password):
        hashed_in_a_transaction.append(connection.in_atomic_block)
        return real_make_password(password)

    monkeypatch.setattr(services, "make_password", make_password)
    services.update_account(user_id=user.pk, password="An0ther-Passw0rd!", full_name="Renamed")
    assert hashed_in_a_transaction == [False]
    saved = User.objects.get(pk=user.pk)
    assert saved.check_password("An0ther-Passw0rd!") and saved.full_name == "Renamed"
