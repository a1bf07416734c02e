"""First-run set-up for `make run`: demo data and an administrator, once."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from logs.models import Log
from statsite.models import AccessToken, ServiceKey

ADMIN_USERNAME = "admin"


def credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-credentials.json"


def write_private(path: Path, text: str) -> None:
    """Write TEXT readable by the owner only (mode 600), even if the file existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


class Command(BaseCommand):
    help = (
        "On the first run: load demo data (when the database has none) and create an administrator, "
        "a personal access token and a service key, written to var/demo-credentials.json (mode 600). "
        "On later runs: print how to log in."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--no-demo", action="store_true", help="Do not load demo data.")

    def handle(self, *args, host: str, port: str, no_demo: bool, **options) -> None:
        path = credentials_path()
        if path.exists():
            creds = json.loads(path.read_text())
        else:
            if not no_demo and not Log.objects.exists():
                self.stdout.write("First run: loading demo data (manage.py seed_demo)…")
                call_command("seed_demo", verbosity=options.get("verbosity", 1), stdout=self.stdout)
            creds = self._create_credentials()
            write_private(path, json.dumps(creds, indent=2) + "\n")
            self.stdout.write(self.style.SUCCESS(f"Credentials written to {path} (readable by you only)."))

        base = f"http://{host}:{port}"
        self.stdout.write("")
        self.stdout.write(f"  Admin:        {base}/admin/   user {creds['username']!r}  password {creds['password']!r}")
        self.stdout.write(f"  API docs:     {base}/api/docs/")
        self.stdout.write(f"  Admin token:  {creds['token']}")
        self.stdout.write(f"  Service key:  {creds['service_key']}")
        self.stdout.write(f"  Try:          curl -H 'X-API-Key: {creds['service_key']}' '{base}/api/ingest/logs' "
                          "-H 'Content-Type: application/json' -d '{\"type\": 5, \"content\": \"hello\"}'")
        self.stdout.write(f"  (stored in {path})")
        self.stdout.write("")

    @transaction.atomic
    def _create_credentials(self) -> dict[str, str]:
        User = get_user_model()
        password = secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username=ADMIN_USERNAME)
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        token = AccessToken(user=user, name="demo admin token")
        raw_token = token.set_new_secret()
        token.save()
        key = ServiceKey(name="demo service key")
        raw_key = key.set_new_secret()
        key.save()
        return {"username": user.username, "password": password, "token": raw_token, "service_key": raw_key}
