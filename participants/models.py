from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models, transaction
from django.db.models.functions import Lower

from config.validators import single_line
from participants.domain import Role, normalize_email, role_of


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email=normalize_email(username or ""))

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        if not email:
            raise ValueError("An email is required.")
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)  # None leaves an unusable password
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)

    def participants(self) -> models.QuerySet[User]:
        return self.filter(is_staff=False)


class User(AbstractBaseUser, PermissionsMixin):
    """An account: an admin (staff) or a participant. Signs in with its email."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, validators=[single_line])
    phone = models.CharField(max_length=32, blank=True, validators=[single_line])
    is_staff = models.BooleanField(default=False, help_text="Admins manage events and sign in to /admin/.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The secret in the URL of the participant's calendar feed (calendar apps cannot send a bearer
    # header). Made on first request, replaced on rotation; it opens that feed and nothing else.
    calendar_token = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["full_name"]

    class Meta:
        ordering = ["id"]
        constraints = [
            # Emails are stored normalized; this keeps two spellings of one address out regardless.
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} <{self.email}>"

    def set_hashed_password(self, hashed: str, raw_password: str) -> None:
        """set_password() with a hash made earlier (make_password), outside the transaction that
        saves it: hashing takes tens of milliseconds on purpose. The save then counts it as a
        password change, as set_password()'s (Django's bookkeeping of the raw password)."""
        self.password = hashed
        self._password = raw_password

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        if self.is_superuser and not self.is_staff:
            # Only an admin holds every permission: an administrator made a participant again
            # (is_staff unticked) would otherwise keep them, listed and enrolled as a participant.
            self.is_superuser = False
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "is_superuser"}
        # set_password() keeps the new raw password until the save (Django's own bookkeeping).
        password_changed = self.pk is not None and getattr(self, "_password", None) is not None
        if not password_changed:
            super().save(*args, **kwargs)
            return
        # One transaction, so the row stays locked until the tokens are revoked: a refresh token
        # traded meanwhile waits for it (participants.tokens.RotatedOnceRefreshToken).
        with transaction.atomic():
            super().save(*args, **kwargs)
            revoke_refresh_tokens(self.pk)

    @property
    def role(self) -> Role:
        return role_of(is_staff=self.is_staff)

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


def revoke_refresh_tokens(user_id: int) -> int:
    """Blacklists every outstanding refresh token of the account: after a password change (by its
    owner, an admin, the admin bootstrap) no session minted with the old password can go on.
    Returns how many were revoked. Access tokens expire on their own within minutes."""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    pending = OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
    revoked = [BlacklistedToken(token=token) for token in pending]
    BlacklistedToken.objects.bulk_create(revoked, ignore_conflicts=True)
    return len(revoked)
