"""The OpenAPI schema as a client needs it: a tag and a summary on every operation, every 4xx it can
answer (problem+json), and request bodies and formats exactly as the API takes them.

drf-spectacular describes what DRF's introspection sees; this hook adds what only the code's rules
know. Each operation's errors: 401 wherever a token is needed, 400 and 413 where a body or query is
read, 404 where an id is in the path or a page is asked for, and the rest from OPERATIONS.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

# operationId: (tag, summary, the statuses this operation answers beyond the general rules).
OPERATIONS: dict[str, tuple[str, str, set[int]]] = {
    "v1_auth_register_create": ("Accounts", "Sign up as a participant", {429}),
    "v1_auth_token_create": ("Accounts", "Sign in: get an access and a refresh token", {429}),
    "v1_auth_token_refresh_create": ("Accounts", "Trade a refresh token for a new pair", {429}),
    "v1_auth_logout_create": ("Accounts", "Sign out: revoke a refresh token", set()),
    "v1_me_retrieve": ("Accounts", "Your account", set()),
    "v1_me_partial_update": ("Accounts", "Change your account", set()),
    "v1_me_enrollments_list": ("Accounts", "Your enrollments", set()),
    "v1_me_notifications_list": ("Notifications", "Your notifications, newest first", set()),
    "v1_participants_list": ("Participants", "List participants (admins)", {403}),
    "v1_participants_create": ("Participants", "Create a participant (admins)", {403}),
    "v1_participants_retrieve": ("Participants", "A participant (admins)", {403}),
    "v1_participants_update": ("Participants", "Replace a participant (admins)", {403}),
    "v1_participants_partial_update": ("Participants", "Change a participant (admins)", {403}),
    "v1_participants_destroy": ("Participants", "Delete a participant, freeing their seats (admins)", {403}),
    "v1_participants_events_list": ("Participants", "A participant's events (admins)", {403}),
    "v1_events_list": ("Events", "List events", set()),
    "v1_events_create": ("Events", "Create an event (admins)", {403}),
    "v1_events_retrieve": ("Events", "An event", set()),
    "v1_events_update": ("Events", "Replace an event (admins)", {403}),
    "v1_events_partial_update": ("Events", "Change an event (admins)", {403}),
    "v1_events_destroy": ("Events", "Delete an event (admins)", {403}),
    "v1_events_enrollments_create": (
        "Enrollment",
        "Enroll (direct: 201; queued: 202)",
        {403, 409, 503},
    ),
    "v1_events_enrollments_me_retrieve": ("Enrollment", "Where your enrollment stands", {403}),
    "v1_events_enrollments_me_destroy": ("Enrollment", "Cancel your enrollment", {403, 409}),
    "v1_events_participants_list": ("Enrollment", "An event's participants (admins)", {403}),
    "v1_events_participants_destroy": (
        "Enrollment",
        "Remove a participant, freeing the seat (admins)",
        {403},
    ),
    "v1_events_waitlist_list": ("Waiting list", "An event's waiting list, in order (admins)", {403}),
    "v1_events_waitlist_create": ("Waiting list", "Join a full event's waiting list", {403, 409}),
    "v1_events_waitlist_me_retrieve": ("Waiting list", "Your place on the waiting list", {403}),
    "v1_events_waitlist_me_destroy": ("Waiting list", "Leave the waiting list", {403}),
    "v1_events_check_ins_create": (
        "Check-in",
        "Check a participant in at the door with their code (admins)",
        {403, 409},
    ),
    "v1_events_reports_create": ("Reports", "Request a participant report (admins)", {403}),
    "v1_reports_list": ("Reports", "List reports (admins)", {403}),
    "v1_reports_retrieve": ("Reports", "A report (admins)", {403}),
    "v1_reports_download_retrieve": ("Reports", "Download a report's document (admins)", {403, 409}),
    "v1_events_calendar_retrieve": ("Calendar", "An event's calendar file (.ics)", set()),
    "v1_me_calendar_retrieve": ("Calendar", "Your calendar feed's URL", set()),
    "v1_me_calendar_rotate_create": (
        "Calendar",
        "Replace your calendar feed's URL (the old one stops working)",
        set(),
    ),
    "v1_calendar_feed_retrieve": (
        "Calendar",
        "Your calendar feed, for calendar apps (the token is in the URL)",
        {404, 429},
    ),
}

# Routes anyone may call: no token, so no 401 for a missing one.
ANONYMOUS = {
    "v1_auth_register_create",
    "v1_auth_token_create",
    "v1_auth_token_refresh_create",
    "v1_calendar_feed_retrieve",  # the secret is its ?token= (events/api/calendar.py)
}
# Sign-in and refresh answer 401 for bad credentials or a bad refresh token.
CREDENTIAL_CHECKS = {"v1_auth_token_create", "v1_auth_token_refresh_create"}

# The creating POSTs that take an Idempotency-Key (config/idempotency.py).
IDEMPOTENT = {
    "v1_auth_register_create",
    "v1_participants_create",
    "v1_events_create",
    "v1_events_enrollments_create",
    "v1_events_waitlist_create",
    "v1_events_reports_create",
    "v1_events_check_ins_create",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
    "description": "Makes a retry safe: the same key with the same body within 24 h replays the first "
    "answer (with `Idempotent-Replayed: true`); with another body it is 422 `idempotency_key_reused`; "
    "while the first request runs, 409 `request_in_progress`. Keys belong to your account (or, "
    "signing up, to your address).",
}

WHY = {
    400: "The request is invalid (`validation_error`, with `errors` per field).",
    401: "No, or a bad or expired, token (`not_authenticated`, `token_not_valid`).",
    403: "Your role may not do this (`permission_denied`).",
    404: "No such id, or a page past the last (`not_found`).",
    409: "The current state refuses it (see `code`).",
    422: "This Idempotency-Key was used for another request (`idempotency_key_reused`).",
    413: "The body is over the size limit (`payload_too_large`).",
    429: "Too many requests (`throttled`, with `Retry-After`).",
    503: "The request cannot be kept right now (`service_unavailable`, with `Retry-After`).",
}

PROBLEM = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details (Content-Type: application/problem+json).",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "Stable, machine-readable name of the error."},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Validation errors per field (400 only).",
        },
    },
    "required": ["status", "code", "detail", "request_id"],
}

# Request bodies of StrictSerializer (config.serializers): unknown fields are refused with a 400.
# (simplejwt's sign-in and refresh bodies ignore unknown fields, and say so by leaving this out.)
STRICT_REQUESTS = {
    "EnrollRequestRequest",
    "EventRequest",
    "PatchedEventRequest",
    "ParticipantRequest",
    "PatchedParticipantRequest",
    "PatchedAccountRequest",
    "RegisterRequest",
    "RefreshTokenRequest",
    "ReportRequestRequest",
    "CheckinRequestRequest",
}
# What each strict body's answer holds besides it: those read-only fields may be sent back (a whole
# object in a PUT) and are ignored, so they are declared, read-only, rather than refused.
ANSWER_OF = {
    "EventRequest": "Event",
    "PatchedEventRequest": "Event",
    "ParticipantRequest": "Participant",
    "PatchedParticipantRequest": "Participant",
    "PatchedAccountRequest": "Account",
    "RegisterRequest": "Account",
}

# Request examples of the main flows, as Swagger UI's "Try it out" fills them in.
EXAMPLES = {
    "RegisterRequest": {
        "email": "ann.lee@example.com",
        "password": "Str0ng-Passw0rd!",
        "full_name": "Ann Lee",
    },
    "TokenObtainPairRequest": {"email": "ann.lee@example.com", "password": "Str0ng-Passw0rd!"},
    "EventRequest": {
        "title": "Quarterly all-hands",
        "description": "Numbers, plans and questions.",
        "date": "2031-03-12",
        "time": "10:00",
        "location": "Auditorium A",
        "capacity": 120,
        "admission": "direct",
    },
    "EnrollRequestRequest": {},
    "ReportRequestRequest": {"recipients": ["hr@example.com"]},
}

# Wall-clock times are taken as HH:MM or HH:MM:SS, without an offset (they are in TIME_ZONE).
TIME = {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$", "example": "10:00"}


# Text the API refuses control characters in (config/validators.py), as patterns.
_BIDI = "\\u202a-\\u202e\\u2066-\\u2069"
SINGLE_LINE = f"^[^\\x00-\\x1f\\x7f{_BIDI}]*$"
MULTI_LINE = f"^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f{_BIDI}]*$"
TEXT_PATTERNS = {
    "title": SINGLE_LINE,
    "location": SINGLE_LINE,
    "full_name": SINGLE_LINE,
    "phone": SINGLE_LINE,
    "description": MULTI_LINE,
}
# A JWT: three base64url parts.
JWT_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


class PlatformAutoSchema(AutoSchema):
    """Descriptions come only from explicit `extend_schema(description=...)`: a view's docstring is
    written for the people who keep the code, not for the API's users."""

    def get_description(self) -> str:  # type: ignore[override]  # (as drf-spectacular declares it)
        return ""


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM
    for component, schema in schemas.items():
        for name, prop in schema.get("properties", {}).items():
            if name == "time" and prop.get("format") == "time":
                schema["properties"][name] = {**TIME, **{k: v for k, v in prop.items() if k == "readOnly"}}
            elif name in TEXT_PATTERNS and prop.get("type") == "string" and component.endswith("Request"):
                prop["pattern"] = TEXT_PATTERNS[name]
            elif name == "refresh" and component.endswith("Request"):
                prop["pattern"] = JWT_PATTERN
    for name, example in EXAMPLES.items():
        if name in schemas:
            schemas[name]["example"] = example
    for name in STRICT_REQUESTS & set(schemas):
        body = schemas[name]
        body["additionalProperties"] = False
        answer = schemas.get(ANSWER_OF.get(name, ""), {})
        for field, prop in answer.get("properties", {}).items():
            if field not in body.setdefault("properties", {}):
                body["properties"][field] = {**prop, "readOnly": True}
    for _path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            _describe(method, operation, schemas)
    return result


def _describe(method: str, operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    op_id = operation.get("operationId", "")
    tag, summary, extra = OPERATIONS.get(op_id, ("Other", op_id.replace("_", " "), set()))
    operation["tags"], operation["summary"] = [tag], summary
    statuses = set(extra)
    parameters = operation.get("parameters", [])
    for parameter in parameters:
        if parameter.get("name") in ("page", "page_size"):
            parameter["schema"] = {"type": "integer", "minimum": 1}
    if op_id == "v1_reports_download_retrieve":  # the stored document itself
        operation["responses"]["200"] = {
            "description": "The report document; gzip-compressed with `?format=gzip`.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    if op_id in ANONYMOUS:
        operation["security"] = []
        if op_id in CREDENTIAL_CHECKS:
            statuses.add(401)
    else:
        statuses.add(401)
    if any(p.get("in") == "path" for p in parameters) or any(p.get("name") == "page" for p in parameters):
        statuses.add(404)
    if any(p.get("in") == "query" for p in parameters):
        statuses.add(400)
    if "requestBody" in operation or method in ("post", "put", "patch"):
        statuses |= {400, 413}
    if op_id in IDEMPOTENT:
        parameters.append(IDEMPOTENCY_KEY)
        operation["parameters"] = parameters
        statuses |= {409, 422}
    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses.setdefault(
            str(status),
            {
                "description": WHY[status],
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            },
        )
