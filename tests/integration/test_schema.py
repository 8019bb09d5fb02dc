from django.core.management import call_command


def test_openapi_schema_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in ("/api/v1/events/{id}/", "/api/v1/events/{event_id}/enrollments/", "/api/v1/auth/token/"):
        assert path in text
    assert "bearerAuth" in text or "jwtAuth" in text


def _schema(tmp_path):
    import yaml

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(target))
    return yaml.safe_load(target.read_text())


def test_every_operation_is_tagged_summarised_and_lists_its_errors(tmp_path):
    from config.openapi import OPERATIONS

    schema = _schema(tmp_path)
    seen = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            op_id = operation["operationId"]
            seen.add(op_id)
            assert op_id in OPERATIONS, f"{method.upper()} {path}: add it to config.openapi.OPERATIONS"
            assert operation["tags"] and operation["tags"] != ["v1"] and operation["summary"]
            assert "description" not in operation or operation["description"]  # no docstrings
            errors = {s: r for s, r in operation["responses"].items() if s.startswith(("4", "5"))}
            for response in errors.values():
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }
            if operation.get("security") != []:
                assert "401" in errors, f"{method.upper()} {path}"
            if "{" in path:
                assert "404" in errors, f"{method.upper()} {path}"
            if method in ("post", "put", "patch"):
                assert {"400", "413"} <= set(errors), f"{method.upper()} {path}"
    assert seen == set(OPERATIONS)  # and no stale entries
    enroll = schema["paths"]["/api/v1/events/{event_id}/enrollments/"]["post"]
    assert {"201", "202", "403", "409", "503"} <= set(enroll["responses"])
    for anonymous in ("/api/v1/auth/register/", "/api/v1/auth/token/"):
        assert schema["paths"][anonymous]["post"]["security"] == []


def test_request_bodies_and_formats_are_declared_as_taken(tmp_path):
    schemas = _schema(tmp_path)["components"]["schemas"]
    event = schemas["EventRequest"]
    assert event["additionalProperties"] is False
    assert event["properties"]["id"]["readOnly"] is True  # sent back in a PUT: ignored, not refused
    assert event["properties"]["time"]["pattern"] and "format" not in event["properties"]["time"]
    assert "additionalProperties" not in schemas["TokenObtainPairRequest"]  # simplejwt ignores extras
    assert schemas["Event"]["properties"]["time"]["example"] == "10:00"


def test_the_creating_posts_document_the_idempotency_key(tmp_path):
    from config.openapi import IDEMPOTENT

    schema = _schema(tmp_path)
    found = set()
    for operations in schema["paths"].values():
        for operation in operations.values():
            names = {p["name"] for p in operation.get("parameters", [])}
            if "Idempotency-Key" in names:
                found.add(operation["operationId"])
                assert {"409", "422"} <= set(operation["responses"])
    assert found == IDEMPOTENT


def test_the_main_flows_have_request_examples(tmp_path):
    schemas = _schema(tmp_path)["components"]["schemas"]
    assert schemas["RegisterRequest"]["example"]["email"]
    assert schemas["TokenObtainPairRequest"]["example"]["password"]
    assert schemas["EventRequest"]["example"]["time"] == "10:00"
    assert (
        "example" in schemas["EnrollRequestRequest"]
        and schemas["ReportRequestRequest"]["example"]["recipients"]
    )
