"""Serializer building blocks shared by every app's API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo never passes silently as "nothing to change".

    Read-only fields a client sends back (for example a whole object in a PUT) are ignored as usual.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
            # DRF's text fields take numbers too (0 becomes "0"); the schema says text, so text only.
            not_text = [
                name
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and not field.read_only
                and data.get(name) is not None
                and not isinstance(data[name], str)
            ]
            if not_text:
                raise serializers.ValidationError({name: ["Not a valid string."] for name in not_text})
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass


class IdRelatedField(serializers.PrimaryKeyRelatedField):
    """A related object named by its id, an integer (or its digits as a string). DRF's own field
    tries int() on whatever comes, and JSON's 1e400 is a float int() cannot take (OverflowError,
    which the field does not catch: a 500); a boolean or a fraction is no id either."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)
