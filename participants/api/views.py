from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status, viewsets
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from participants import selectors, services
from participants.api import throttling
from participants.api.serializers import (
    AccountSerializer,
    ParticipantSerializer,
    RefreshTokenSerializer,
    RegisterSerializer,
)
from participants.domain import normalize_email
from participants.models import User
from participants.permissions import IsAdmin, signed_in_user_id
from participants.tokens import RotatingRefreshSerializer


class AuthThrottleMixin:
    """Per-address rate limit of the sign-up and sign-in routes (REST_FRAMEWORK rate "auth")."""

    throttle_classes: Sequence[type[BaseThrottle]] = [ScopedRateThrottle]
    throttle_scope = "auth"


class RegisterView(AuthThrottleMixin, generics.GenericAPIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []
    serializer_class = RegisterSerializer

    @extend_schema(responses={201: AccountSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.register_participant(**serializer.validated_data)
        return Response(AccountSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenView(AuthThrottleMixin, TokenObtainPairView):
    """Signs in with email and password; repeated failures on one account are throttled."""

    authentication_classes = ()

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        email = request.data.get("email") if isinstance(request.data, dict) else None
        email = normalize_email(email) if isinstance(email, str) else ""
        if isinstance(request.data, dict):
            _refuse_unencodable(request.data, ("email", "password"))
        if email:
            throttling.claim_attempt(email)  # counted now; a success clears the count
        response = super().post(request, *args, **kwargs)
        if email:
            throttling.clear_failures(email)
        return response


def _refuse_unencodable(data: dict[str, Any], fields: Sequence[str]) -> None:
    """Text that is not valid Unicode (lone surrogates, which JSON's \\u escapes allow) is refused
    as invalid input before it reaches the database or a hash."""
    errors = {}
    for field in fields:
        value = data.get(field)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                errors[field] = ["Enter valid text (this contains invalid characters)."]
    if errors:
        raise serializers.ValidationError(errors)


class RefreshView(AuthThrottleMixin, TokenRefreshView):
    """Trades a refresh token for a new pair; the old refresh token is blacklisted (rotation), and
    of the same token traded twice at once, one trade gets a pair (RotatingRefreshSerializer)."""

    authentication_classes = ()
    serializer_class = RotatingRefreshSerializer

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except User.DoesNotExist as exc:  # simplejwt loads the account: it was deleted meanwhile
            raise InvalidToken("The account of this token no longer exists.") from exc


class LogoutView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = RefreshTokenSerializer

    @extend_schema(responses={204: None})
    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = RefreshToken(serializer.validated_data["refresh"])
        except TokenError as exc:
            raise InvalidToken(str(exc)) from exc
        if str(token.get("user_id")) != str(request.user.pk):
            raise serializers.ValidationError({"refresh": ["This refresh token belongs to another account."]})
        token.blacklist()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(generics.RetrieveUpdateAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = AccountSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self) -> User:
        return self.request.user  # type: ignore[return-value]

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.update_account(
            user_id=signed_in_user_id(self.request), **serializer.validated_data
        )


class ParticipantViewSet(viewsets.ModelViewSet):
    """Participant accounts, managed by admins. `?search=` matches email and name."""

    permission_classes = [IsAdmin]
    serializer_class = ParticipantSerializer
    # <id:...>, as the other routes: DRF's default took "٣" for 3 (the router is path-based).
    lookup_value_converter = "id"

    def get_queryset(self) -> QuerySet[User]:
        queryset = selectors.participants().order_by("id")
        search = self.request.query_params.get("search", "").strip()
        if "\x00" in search:  # PostgreSQL's text cannot hold it: refused, as the events' search is
            raise serializers.ValidationError({"search": ["Null characters are not allowed."]})
        if search:
            queryset = queryset.filter(Q(email__icontains=search) | Q(full_name__icontains=search))
        return queryset

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.register_participant(**serializer.validated_data)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        instance = serializer.instance
        assert instance is not None
        serializer.instance = services.update_account(user_id=instance.pk, **serializer.validated_data)

    def perform_destroy(self, instance: User) -> None:
        services.delete_participant(participant_id=instance.pk)
