import os

from django.core.management.base import BaseCommand

from participants.services import ensure_admin


class Command(BaseCommand):
    help = "Creates or updates the admin account from ADMIN_EMAIL and ADMIN_PASSWORD, when both are set."

    def handle(self, *args: object, **options: object) -> None:
        email, password = os.environ.get("ADMIN_EMAIL", ""), os.environ.get("ADMIN_PASSWORD", "")
        if not (email and password):
            self.stdout.write("ADMIN_EMAIL/ADMIN_PASSWORD not both set: no admin account ensured.")
            return
        user, created = ensure_admin(email=email, password=password)
        self.stdout.write(f"Admin {user.email} {'created' if created else 'updated'}.")
