"""Check-in at the door over HTTP: `POST /api/v1/events/{id}/check-ins/ {code}` (admins), every
answer it gives, the codes participants see, the report's and the metric's view of it."""

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from rest_framework_simplejwt.tokens import AccessToken

from events import services
from events.domain import display_checkin_code
from events.models import Enrollment
from tests.factories import AdminFactory, EventFactory, UserFactory
from tests.helpers import assert_problem, client_for, scrape_metrics

# Real commits: the metric is counted on commit, and the race below needs its own connections.
pytestmark = pytest.mark.django_db(transaction=True)


def check_in_url(event_id):
    return f"/api/v1/events/{event_id}/check-ins/"


@pytest.fixture
def ann(db):
    return UserFactory(full_name="Ann Lee", email="ann.lee@example.com")


@pytest.fixture
def ticket(event, ann) -> Enrollment:
    return services.enroll(event_id=event.pk, participant_id=ann.pk)


def test_a_code_checks_its_holder_in_once(admin_api, event, ann, ticket):
    response = admin_api.post(check_in_url(event.pk), {"code": ticket.checkin_code}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "participant": {"id": ann.pk, "email": "ann.lee@example.com", "full_name": "Ann Lee"},
        "checked_in_at": body["checked_in_at"],
    }
    ticket.refresh_from_db()
    assert ticket.checked_in_at is not None
    assert body["checked_in_at"] == ticket.checked_in_at.isoformat().replace("+00:00", "Z")

    # Again, as the e-mail prints it: refused, with the time of the first check-in.
    again = admin_api.post(
        check_in_url(event.pk), {"code": display_checkin_code(ticket.checkin_code)}, format="json"
    )
    problem = assert_problem(again, 409, "already_checked_in")
    assert problem["checked_in_at"] == body["checked_in_at"]
    ticket.refresh_from_db()
    assert ticket.checked_in_at.isoformat().replace("+00:00", "Z") == body["checked_in_at"]


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code.lower(),
        lambda code: display_checkin_code(code),  # ABCD-EFGH-IJKL-MNOP
        lambda code: " ".join(display_checkin_code(code).lower().split("-")),  # abcd efgh ijkl mnop
        lambda code: f"  {code[:8]} - {code[8:]}\t",
        lambda code: f"{code}\r\n",  # a scanner that ends what it reads with a line end
    ],
)
def test_codes_are_read_whatever_the_case_spaces_and_dashes(admin_api, event, ticket, typed):
    response = admin_api.post(check_in_url(event.pk), {"code": typed(ticket.checkin_code)}, format="json")
    assert response.status_code == 201, response.content


def test_unknown_codes_codes_of_other_events_and_unknown_events_are_404(admin_api, event, ann, ticket):
    other = EventFactory()
    elsewhere = services.enroll(event_id=other.pk, participant_id=ann.pk)

    assert_problem(
        admin_api.post(check_in_url(event.pk), {"code": "AAAA" * 4}, format="json"), 404, "not_found"
    )
    # Ann's ticket for the other event does not open this one's door (and is not used up by trying).
    response = admin_api.post(check_in_url(event.pk), {"code": elsewhere.checkin_code}, format="json")
    assert_problem(response, 404, "not_found")
    elsewhere.refresh_from_db()
    assert elsewhere.checked_in_at is None
    response = admin_api.post(check_in_url(999_999), {"code": ticket.checkin_code}, format="json")
    assert_problem(response, 404, "not_found")
    # The right door still takes it.
    assert (
        admin_api.post(check_in_url(other.pk), {"code": elsewhere.checkin_code}, format="json").status_code
        == 201
    )


def test_a_cancelled_code_is_not_enrolled_and_enrolling_again_gives_a_new_code(admin_api, event, ann, ticket):
    old_code = ticket.checkin_code
    assert client_for(ann).delete(f"/api/v1/events/{event.pk}/enrollments/me/").status_code == 204
    assert_problem(
        admin_api.post(check_in_url(event.pk), {"code": old_code}, format="json"), 409, "not_enrolled"
    )

    again = services.enroll(event_id=event.pk, participant_id=ann.pk)
    assert again.checkin_code != old_code
    assert_problem(
        admin_api.post(check_in_url(event.pk), {"code": old_code}, format="json"), 409, "not_enrolled"
    )
    response = admin_api.post(check_in_url(event.pk), {"code": again.checkin_code}, format="json")
    assert response.status_code == 201 and response.json()["participant"]["id"] == ann.pk


def test_a_code_of_someone_an_admin_removed_is_not_enrolled(admin_api, event, ann, ticket):
    assert admin_api.delete(f"/api/v1/events/{event.pk}/participants/{ann.pk}/").status_code == 204
    response = admin_api.post(check_in_url(event.pk), {"code": ticket.checkin_code}, format="json")
    assert_problem(response, 409, "not_enrolled")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": ""},
        {"code": "   "},
        {"code": " - - "},
        {"code": None},
        {"code": 1234},
        {"code": ["ABCD"]},
        {"code": {"value": "ABCD"}},
        {"code": "A" * 65},
        {"code": "ABCD\x00EFGH"},
        {"code": "ÄBCDEFGH"},
        {"code": "ABCD!EFGH"},
    ],
)
def test_bad_bodies_are_400_on_the_code(admin_api, event, ticket, body):
    problem = assert_problem(
        admin_api.post(check_in_url(event.pk), body, format="json"), 400, "validation_error"
    )
    assert list(problem["errors"]) == ["code"]
    ticket.refresh_from_db()
    assert ticket.checked_in_at is None


def test_bodies_that_are_not_a_code_object_are_400(admin_api, event, ticket):
    url = check_in_url(event.pk)
    unknown = assert_problem(
        admin_api.post(url, {"code": ticket.checkin_code, "participant": 1}, format="json"),
        400,
        "validation_error",
    )
    assert unknown["errors"] == {"participant": ["Unknown field."]}
    for raw in (b"{not json", b"[]", b'"ABCD"', b"null"):
        assert_problem(admin_api.post(url, raw, content_type="application/json"), 400, "validation_error")
    ticket.refresh_from_db()
    assert ticket.checked_in_at is None


def test_only_admins_check_in(anon, participant_api, event, ann, ticket):
    url = check_in_url(event.pk)
    problem = assert_problem(
        anon.post(url, {"code": ticket.checkin_code}, format="json"), 401, "not_authenticated"
    )
    assert problem and anon.post(url, {"code": ticket.checkin_code}, format="json")["WWW-Authenticate"]
    assert_problem(
        participant_api.post(url, {"code": ticket.checkin_code}, format="json"), 403, "permission_denied"
    )
    # Not even the holder checks themself in: the door does.
    assert_problem(
        client_for(ann).post(url, {"code": ticket.checkin_code}, format="json"), 403, "permission_denied"
    )
    ticket.refresh_from_db()
    assert ticket.checked_in_at is None


def test_other_methods_are_405(admin_api, event):
    for method in (admin_api.get, admin_api.put, admin_api.patch, admin_api.delete):
        assert_problem(method(check_in_url(event.pk)), 405, "method_not_allowed")


def test_participants_see_their_own_code_and_check_in_time_and_admins_see_who_came(
    admin_api, event, ann, ticket
):
    bob = UserFactory()
    bobs = services.enroll(event_id=event.pk, participant_id=bob.pk)
    [mine] = client_for(ann).get("/api/v1/me/enrollments/").json()["results"]
    assert mine["checkin_code"] == display_checkin_code(ticket.checkin_code)
    assert mine["checked_in_at"] is None

    checked_in_at = admin_api.post(
        check_in_url(event.pk), {"code": mine["checkin_code"]}, format="json"
    ).json()["checked_in_at"]
    [mine] = client_for(ann).get("/api/v1/me/enrollments/").json()["results"]
    assert mine["checked_in_at"] == checked_in_at
    # Bob's list has Bob's code only.
    text = client_for(bob).get("/api/v1/me/enrollments/").content.decode()
    assert display_checkin_code(bobs.checkin_code) in text and ticket.checkin_code[:4] not in text.replace(
        display_checkin_code(bobs.checkin_code), ""
    )

    listed = admin_api.get(f"/api/v1/events/{event.pk}/participants/").json()["results"]
    assert [(p["id"], p["checked_in_at"]) for p in listed] == [(ann.pk, checked_in_at), (bob.pk, None)]
    text = admin_api.get(f"/api/v1/events/{event.pk}/participants/").content.decode()
    assert "checkin_code" not in text and ticket.checkin_code not in text and bobs.checkin_code not in text


def test_a_retried_check_in_with_the_same_key_replays_the_201(admin_api, event, ticket):
    """Idempotency-Key (config/idempotency.py): the door's retry after a lost answer gets the 201
    again, not a 409 for its own first attempt."""
    url = check_in_url(event.pk)
    first = admin_api.post(url, {"code": ticket.checkin_code}, format="json", HTTP_IDEMPOTENCY_KEY="door-1")
    again = admin_api.post(url, {"code": ticket.checkin_code}, format="json", HTTP_IDEMPOTENCY_KEY="door-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other = admin_api.post(url, {"code": "AAAA" * 4}, format="json", HTTP_IDEMPOTENCY_KEY="door-1")
    assert_problem(other, 422, "idempotency_key_reused")
    # Without the key it is a new request, and the code has been used.
    assert_problem(
        admin_api.post(url, {"code": ticket.checkin_code}, format="json"), 409, "already_checked_in"
    )


def _fire_together(url, token, code, times):
    """POSTs the code `times` times at the same moment, each in its own connection and server
    thread; returns each answer's (status, code or None, checked_in_at)."""
    barrier = threading.Barrier(times)

    def send(_):
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            response = http.post(url, json={"code": code}, headers={"Authorization": f"Bearer {token}"})
        body = response.json()
        return (
            response.status_code,
            body.get("code") if response.status_code >= 400 else None,
            body.get("checked_in_at"),
        )

    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(send, range(times)))


@pytest.mark.parametrize("at_once", [2, 8])
def test_simultaneous_check_ins_of_one_code_record_one_time(live_server, at_once):
    """Two scanners (or eight) read the same ticket at once: exactly one 201; every other answer is
    409 already_checked_in with the winner's time, which is the time stored."""
    event = EventFactory()
    token = str(AccessToken.for_user(AdminFactory()))
    for _ in range(3):  # a few rounds: a race that passes once by luck does not pass three times
        enrollment = services.enroll(event_id=event.pk, participant_id=UserFactory().pk)
        answers = _fire_together(
            f"{live_server.url}{check_in_url(event.pk)}", token, enrollment.checkin_code, at_once
        )
        outcomes = Counter((status, code) for status, code, _ in answers)
        assert outcomes == {(201, None): 1, (409, "already_checked_in"): at_once - 1}, answers
        assert len({when for _, _, when in answers}) == 1, answers  # all the same first time
        enrollment.refresh_from_db()
        assert enrollment.checked_in_at.isoformat().replace("+00:00", "Z") == answers[0][2]


def test_check_ins_are_counted_on_metrics(anon, admin_api, event, ticket):
    """`events_check_ins_total` counts first check-ins: not the refusals."""
    before = scrape_metrics(anon).get("events_check_ins_total", 0.0)
    url = check_in_url(event.pk)
    assert admin_api.post(url, {"code": ticket.checkin_code}, format="json").status_code == 201
    assert admin_api.post(url, {"code": ticket.checkin_code}, format="json").status_code == 409
    assert admin_api.post(url, {"code": "AAAA" * 4}, format="json").status_code == 404
    assert scrape_metrics(anon)["events_check_ins_total"] - before == 1


def test_the_report_lists_when_each_participant_checked_in(admin_api, event, ann, ticket):
    bob = UserFactory()
    services.enroll(event_id=event.pk, participant_id=bob.pk)
    checked_in_at = admin_api.post(
        check_in_url(event.pk), {"code": ticket.checkin_code}, format="json"
    ).json()["checked_in_at"]
    report = admin_api.post(f"/api/v1/events/{event.pk}/reports/", {}, format="json").json()
    download = admin_api.get(f"/api/v1/reports/{report['id']}/download/")
    assert download.status_code == 200
    document = json.loads(b"".join(download.streaming_content))
    rows = {p["id"]: p for p in document["participants"]}
    assert list(rows[ann.pk]) == ["id", "full_name", "email", "enrolled_at", "checked_in_at"]
    # The report writes times as isoformat() does (+00:00), the API as DRF does (Z): the same instant.
    assert rows[ann.pk]["checked_in_at"].replace("+00:00", "Z") == checked_in_at
    assert rows[bob.pk]["checked_in_at"] is None


def test_every_text_the_schema_admits_is_looked_up(admin_api, event, ticket):
    """The body's schema states which texts are codes (letters and digits, spaces and dashes around
    them); a text of that shape nobody holds is an unknown code (404), not a bad request."""
    for typed in ("A" * 33, " - A - ", "abcd efgh\tijkl-mnop-qrst"):
        assert_problem(
            admin_api.post(check_in_url(event.pk), {"code": typed}, format="json"), 404, "not_found"
        )
    ticket.refresh_from_db()
    assert ticket.checked_in_at is None
