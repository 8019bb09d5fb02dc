"""Validators of user-entered text that ends up in e-mail headers, logs and other people's screens."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

# C0 controls and DEL, and the bidirectional overrides and isolates that make text display in an
# order other than the one it is stored in (a "Trojan Source" trick).
_BIDI = "\u202a-\u202e\u2066-\u2069"
_SINGLE_LINE_FORBIDDEN = re.compile(f"[\x00-\x1f\x7f{_BIDI}]")
# Multi-line text keeps tab, line feed and carriage return.
_MULTI_LINE_FORBIDDEN = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f{_BIDI}]")


@deconstructible
class NoControlCharacters:
    """Refuses control characters (line breaks too, unless `multiline`) and bidi overrides.

    A title with "\\r\\nBcc: …" in it would otherwise travel into every confirmation e-mail's
    subject, where the mail library refuses it and the e-mail is never sent."""

    def __init__(self, *, multiline: bool = False):
        self.multiline = multiline

    def __call__(self, value: str) -> None:
        pattern = _MULTI_LINE_FORBIDDEN if self.multiline else _SINGLE_LINE_FORBIDDEN
        if isinstance(value, str) and pattern.search(value):
            what = "control characters" if self.multiline else "line breaks or control characters"
            raise ValidationError(f"Must not contain {what}.", code="control_characters")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoControlCharacters) and other.multiline == self.multiline

    def __hash__(self) -> int:
        return hash(self.multiline)


single_line = NoControlCharacters()
multi_line = NoControlCharacters(multiline=True)
