from django.core.management import call_command


def test_openapi_schema_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in ("/api/v1/events/{id}/", "/api/v1/events/{event_id}/enrollments/", "/api/v1/auth/token/"):
        assert path in text
    assert "bearerAuth" in text or "jwtAuth" in text
