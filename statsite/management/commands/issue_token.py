"""Create a personal access token for an account (created if needed)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from statsite.models import AccessToken


class Command(BaseCommand):
    help = (
        "Create a personal access token for USERNAME (the account is created if it does not exist) "
        "and print it. The token is shown only this once; the last line of output is the token."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--admin", action="store_true", help="Make the account an administrator (staff).")
        parser.add_argument("--name", default="cli", help="A label for the token (default: cli).")

    def handle(self, *args, username: str, admin: bool, name: str, **options) -> None:
        try:
            UnicodeUsernameValidator()(username)
        except ValidationError as exc:
            raise CommandError(f"Invalid username {username!r}: {' '.join(exc.messages)}") from exc
        if not name.strip() or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")

        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_unusable_password()
            if admin and not user.is_staff:
                user.is_staff = True
            user.save()
            token = AccessToken(user=user, name=name)
            raw = token.set_new_secret()
            token.save()

        role = "administrator" if user.is_staff else "user"
        verb = "Created" if created else "Found"
        self.stdout.write(f"{verb} {role} account {user.username!r} (id {user.pk}).")
        self.stdout.write(f"Token {name!r} ({token.prefix}…) created. Keep it now: it is not shown again.")
        self.stdout.write(raw)
