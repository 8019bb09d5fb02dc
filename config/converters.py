"""Path converters shared by the apps' URLconfs, registered when this module is imported."""

from __future__ import annotations

from django.urls import register_converter

# The largest id a primary key (PostgreSQL bigint, SQLite INTEGER) can hold.
MAX_DATABASE_ID = 2**63 - 1


class DatabaseIdConverter:
    """`<id:...>`: Django's `<int:...>` up to the largest database id. A longer number matches no
    route (404, like any unknown id) instead of reaching a statement that cannot bind it."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_DATABASE_ID:
            raise ValueError("beyond any database id")  # Django: this route does not match
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(DatabaseIdConverter, "id")
