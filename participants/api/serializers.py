from __future__ import annotations

from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from config.serializers import StrictModelSerializer, StrictSerializer
from participants.domain import normalize_email
from participants.models import User


def _check_password(password: str, *, email: str, full_name: str) -> None:
    try:
        password_validation.validate_password(password, user=User(email=email, full_name=full_name))
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"password": list(exc.messages)}) from exc


class AccountSerializer(StrictModelSerializer):
    """A signed-in user's own account."""

    role = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "phone", "role", "created_at"]
        read_only_fields = ["id", "role", "created_at"]
        extra_kwargs = {"full_name": {"allow_blank": False}}

    def validate_email(self, value: str) -> str:
        value = normalize_email(value)
        taken = User.objects.filter(email=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("An account with this email already exists.")
        return value


class RegisterSerializer(AccountSerializer):
    password = serializers.CharField(write_only=True, trim_whitespace=False, style={"input_type": "password"})

    class Meta(AccountSerializer.Meta):
        fields = [*AccountSerializer.Meta.fields, "password"]
        extra_kwargs = {"full_name": {"allow_blank": False, "required": True}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _check_password(attrs["password"], email=attrs["email"], full_name=attrs["full_name"])
        return attrs


class ParticipantSerializer(AccountSerializer):
    """A participant as admins see and manage them."""

    password = serializers.CharField(
        write_only=True, required=False, trim_whitespace=False, style={"input_type": "password"}
    )

    class Meta(AccountSerializer.Meta):
        fields = ["id", "email", "full_name", "phone", "created_at", "password"]
        read_only_fields = ["id", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None and not attrs.get("password"):
            raise serializers.ValidationError({"password": ["This field is required."]})
        if attrs.get("password"):
            _check_password(
                attrs["password"],
                email=attrs.get("email", getattr(self.instance, "email", "")),
                full_name=attrs.get("full_name", getattr(self.instance, "full_name", "")),
            )
        return attrs


class RefreshTokenSerializer(StrictSerializer):
    refresh = serializers.CharField()
