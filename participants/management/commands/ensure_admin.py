import os

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from participants.models import User
from participants.services import ensure_admin


class Command(BaseCommand):
    help = "Creates or updates the admin account from ADMIN_EMAIL and ADMIN_PASSWORD, when both are set."

    def handle(self, *args: object, **options: object) -> None:
        email, password = os.environ.get("ADMIN_EMAIL", ""), os.environ.get("ADMIN_PASSWORD", "")
        if not (email and password):
            self.stdout.write("ADMIN_EMAIL/ADMIN_PASSWORD not both set: no admin account ensured.")
            return
        # The most powerful account meets at least the rules every participant's password meets,
        # and is never left with .env.example's placeholder.
        if password.startswith("change-me"):
            raise CommandError("ADMIN_PASSWORD is still the placeholder of .env.example: choose a real one.")
        try:
            validate_password(password, User(email=email))
        except ValidationError as exc:
            raise CommandError(f"ADMIN_PASSWORD is refused: {' '.join(exc.messages)}") from exc
        user, created = ensure_admin(email=email, password=password)
        self.stdout.write(f"Admin {user.email} {'created' if created else 'updated'}.")
