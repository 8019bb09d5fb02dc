"""The error shape holds everywhere: unknown routes, wrong methods, crashes; request ids flow."""

import logging

import pytest

from events import selectors
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db


def test_unknown_routes_are_problem_404(participant_api, anon):
    assert_problem(participant_api.get("/api/v1/no-such-route/"), 404, "not_found")
    assert_problem(anon.get("/nothing/here"), 404, "not_found")


def test_wrong_method_is_405_with_allow(participant_api):
    response = participant_api.put("/api/v1/auth/token/", {})
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_a_body_not_json_is_415_and_an_accept_the_api_cannot_answer_is_406(anon, participant_api):
    response = anon.post("/api/v1/auth/token/", "email=a@example.com", content_type="text/plain")
    assert_problem(response, 415, "unsupported_media_type")
    response = participant_api.get("/api/v1/me/notifications/", HTTP_ACCEPT="text/html")
    assert_problem(response, 406, "not_acceptable")


def test_request_id_echoed_or_generated(anon):
    response = anon.get("/health/live", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    generated = anon.get("/health/live")["X-Request-ID"]
    assert len(generated) == 32
    # Anything unsafe for logs and headers is replaced.
    assert anon.get("/health/live", HTTP_X_REQUEST_ID="bad id\nx")["X-Request-ID"] != "bad id\nx"


def test_a_crash_is_a_500_problem_without_a_trace(participant_api, monkeypatch, settings, caplog):
    settings.DEBUG = True  # not even in debug does a client see a trace or an HTML page

    def boom():
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "events", boom)
    monkeypatch.setattr("events.api.views.EventViewSet.get_queryset", lambda self: boom())
    response = participant_api.get("/api/v1/events/")
    body = assert_problem(response, 500, "server_error")
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert body["detail"] == "A server error occurred."
    assert any("secret internals" in str(r.exc_info) for r in caplog.records if r.exc_info)


def test_request_log_line_has_no_credentials(participant, anon, caplog):
    caplog.set_level("INFO", logger="http.request")
    anon.post("/api/v1/auth/token/", {"email": participant.email, "password": "Str0ng-Passw0rd!"})
    anon.get("/api/v1/me/?token=sekrit", HTTP_AUTHORIZATION="Bearer sekrit-token")
    lines = [r for r in caplog.records if r.name == "http.request"]
    assert len(lines) == 2
    fields = lines[0].fields
    assert {"method", "path", "status", "duration_ms", "user_id"} <= set(fields)
    assert (fields["method"], fields["path"], fields["status"]) == ("POST", "/api/v1/auth/token/", 200)
    text = caplog.text + "".join(str(r.__dict__) for r in lines)
    assert "Str0ng-Passw0rd!" not in text
    assert "sekrit" not in text


def test_request_log_line_names_the_user(participant_api, participant, caplog):
    caplog.set_level("INFO", logger="http.request")
    participant_api.get("/api/v1/me/")
    assert [r.fields["user_id"] for r in caplog.records if r.name == "http.request"] == [participant.pk]


def test_docs_and_schema_are_served_without_a_cdn(anon):
    schema = anon.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/events/" in schema.content
    swagger = anon.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/" in swagger  # the bundled Swagger UI
    assert '<script src="/api/redoc/redoc.standalone.js">' in anon.get("/api/redoc/").content.decode()
    for page in ("/api/docs/", "/api/redoc/"):
        html = anon.get(page).content.decode()
        assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
    asset = anon.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_admin_login_page_stays_html(anon):
    response = anon.get("/admin/login/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


def test_the_root_address_leads_to_the_docs_and_the_admin(anon):
    page = anon.get("/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    for link in ('href="/api/docs/"', 'href="/api/redoc/"', 'href="/admin/"'):
        assert link in html
    assert_problem(anon.post("/"), 405, "method_not_allowed")


def test_the_api_docs_load_nothing_from_outside(anon):
    import re

    redoc = anon.get("/api/redoc/")
    assert redoc.status_code == 200
    html = redoc.content.decode()
    assert not re.search(r"(src|href)=\"https?://", html) and "googleapis" not in html
    bundle_url = re.search(r'<script src="([^"]+)"', html).group(1)
    bundle = anon.get(bundle_url)
    assert bundle["Content-Type"].startswith("application/javascript")
    assert b"cdn.redoc.ly" not in bundle.content and len(bundle.content) > 100_000
    swagger = anon.get("/api/docs/").content.decode()
    assert not re.search(r"(src|href)=\"https?://", swagger)
    assert '"validatorUrl": null' in swagger  # no badge from validator.swagger.io


def test_a_foreign_host_is_one_warning_line_not_an_error_with_a_traceback(anon, caplog):
    caplog.set_level(logging.INFO)
    answer = anon.get("/api/v1/events/", HTTP_HOST="evil.example")
    assert_problem(answer, 400, "bad_request")
    (record,) = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "evil.example" in record.getMessage()
    assert [r.levelname for r in caplog.records if r.name == "http.request"] == ["INFO"]
