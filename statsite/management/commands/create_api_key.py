"""Create a service API key."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from statsite.models import ServiceKey


class Command(BaseCommand):
    help = (
        "Create a service API key named NAME and print it. Service keys act for the whole installation "
        "(ingest, bot stats, console). The key is shown only this once; the last line of output is the key."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")

    def handle(self, *args, name: str, **options) -> None:
        if not name.strip() or len(name) > 100:
            raise CommandError("NAME must be 1 to 100 characters.")
        key = ServiceKey(name=name)
        raw = key.set_new_secret()
        key.save()
        self.stdout.write(f"Service key {name!r} ({key.prefix}…) created. Keep it now: it is not shown again.")
        self.stdout.write(raw)
