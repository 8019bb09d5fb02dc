from types import SimpleNamespace

import pytest

from participants.domain import Role
from participants.permissions import IsAdmin, IsAdminOrReadOnly, IsParticipant

ANON = SimpleNamespace(is_authenticated=False, role=None)
ADMIN = SimpleNamespace(is_authenticated=True, role=Role.ADMIN)
PARTICIPANT = SimpleNamespace(is_authenticated=True, role=Role.PARTICIPANT)


def allowed(permission, user, method="GET"):
    return permission().has_permission(SimpleNamespace(user=user, method=method), view=None)


@pytest.mark.parametrize(("user", "expected"), [(ANON, False), (PARTICIPANT, False), (ADMIN, True)])
def test_is_admin(user, expected):
    assert allowed(IsAdmin, user) is expected


@pytest.mark.parametrize(("user", "expected"), [(ANON, False), (PARTICIPANT, True), (ADMIN, False)])
def test_is_participant(user, expected):
    assert allowed(IsParticipant, user) is expected


@pytest.mark.parametrize(
    ("user", "method", "expected"),
    [
        (ANON, "GET", False),
        (PARTICIPANT, "GET", True),
        (PARTICIPANT, "HEAD", True),
        (PARTICIPANT, "POST", False),
        (PARTICIPANT, "PATCH", False),
        (PARTICIPANT, "DELETE", False),
        (ADMIN, "GET", True),
        (ADMIN, "POST", True),
        (ADMIN, "DELETE", True),
    ],
)
def test_admin_or_read_only(user, method, expected):
    assert allowed(IsAdminOrReadOnly, user, method) is expected
