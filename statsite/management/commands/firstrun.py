"""First-run set-up for `make run`: demo data and an administrator, once per database."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from logs.models import Log
from statsite.models import AccessToken, ServiceKey

ADMIN_USERNAME = "admin"
CREDENTIAL_FIELDS = ("username", "password", "token", "service_key")


def credentials_path() -> Path:
    """Where the demo credentials of this database are kept: `var/demo-credentials.json`
    for the default SQLite database under var/, a file named after the database for any
    other (a DATABASE_URL), so that switching databases never overwrites another's."""
    var = Path(settings.VAR_DIR)
    db = connection.settings_dict
    if connection.vendor == "sqlite" and str(db["NAME"]) == str(var / "statsite.sqlite3"):
        return var / "demo-credentials.json"
    parts = (connection.vendor, db.get("HOST"), db.get("PORT"), db["NAME"])
    slug = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(str(p) for p in parts if p)).strip("-")[:80]
    return var / f"demo-credentials-{slug}.json"


def write_private(path: Path, text: str) -> None:
    """Write TEXT readable by the owner only (mode 600), even if the file existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def read_credentials(path: Path) -> tuple[dict[str, str] | None, str]:
    """The credentials stored at PATH, or None and why not ("" when there is no file)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, ""
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"{path} cannot be read ({exc})"
    if not isinstance(stored, dict) or not all(isinstance(stored.get(f), str) for f in CREDENTIAL_FIELDS):
        return None, f"{path} is not a credentials file (it needs the strings {', '.join(CREDENTIAL_FIELDS)})"
    return stored, ""


@dataclass(frozen=True)
class Working:
    """Which of the stored credentials work in this database, and whether it is the
    database they were made in (their administrator is there, joined when they were)."""

    same_database: bool
    account: bool  # the administrator can log in to the admin: active and staff
    password: bool
    token: bool
    service_key: bool

    @classmethod
    def of(cls, creds: dict[str, str]) -> Working:
        admin = get_user_model().objects.filter(username=creds["username"]).first()
        account = admin is not None and admin.is_active and admin.is_staff
        token = AccessToken.find(creds["token"])
        found = cls(
            same_database=admin is not None and admin.date_joined.isoformat() == creds.get("joined"),
            account=account,
            password=account and admin.check_password(creds["password"]),
            token=account and token is not None and token.user_id == admin.pk,
            service_key=ServiceKey.find(creds["service_key"]) is not None,
        )
        if "joined" not in creds:  # written before "joined" was: any credential that works tells
            return replace(found, same_database=found.password or found.token or found.service_key)
        return found


ALL_WORK = Working(same_database=True, account=True, password=True, token=True, service_key=True)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise CommandError(f"--port must be a number from 1 to 65535, not {text!r}.")
    return port


class Command(BaseCommand):
    help = (
        "On the first run against a database: load demo data (when it has none) and create an "
        "administrator, a personal access token and a service key, written to var/demo-credentials.json "
        "(mode 600; another DATABASE_URL gets a file of its own). On later runs: print how to log in, "
        "showing only the credentials that still work. A file whose administrator is not in the "
        "database (a new or replaced database) is replaced. Existing accounts are never changed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--no-demo", action="store_true", help="Do not load demo data.")

    def handle(self, *args, host: str, port: str, no_demo: bool, **options) -> None:
        base = f"http://{f'[{host}]' if ':' in host else host}:{port_number(port)}"  # [::1]: an IPv6 address
        path = credentials_path()
        creds, problem = read_credentials(path)
        working = Working.of(creds) if creds else None
        if working is None or not working.same_database:
            if problem:
                self.stderr.write(self.style.WARNING(f"{problem}: new credentials replace it."))
            elif creds:
                self.stderr.write(self.style.WARNING(
                    f"The credentials in {path} were made for another database (this one is new, "
                    "or was replaced): new ones replace them."
                ))
            if not no_demo and not Log.objects.exists():
                self.stdout.write("First run: loading demo data (manage.py seed_demo)…")
                call_command("seed_demo", verbosity=options.get("verbosity", 1), stdout=self.stdout)
            creds = self._create_credentials()
            write_private(path, json.dumps(creds, indent=2) + "\n")
            working = ALL_WORK
            self.stdout.write(self.style.SUCCESS(f"Credentials written to {path} (readable by you only)."))
        self._print(creds, working, base, path)

    def _print(self, creds: dict[str, str], working: Working, base: str, path: Path) -> None:
        user = creds["username"]
        if working.password:
            login = f"user {user!r}  password {creds['password']!r}"
        elif working.account:
            login = f"user {user!r}  (its password was changed since; not shown)"
        else:
            login = f"(the administrator {user!r} is disabled or no longer staff)"
        if working.token:
            token = creds["token"]
        else:
            token = f"(revoked; `manage.py issue_token {user} --admin` issues a new one)"
        key = creds["service_key"] if working.service_key else "(revoked; `manage.py create_api_key NAME` makes one)"
        self.stdout.write("")
        self.stdout.write(f"  Admin:        {base}/admin/   {login}")
        self.stdout.write(f"  API docs:     {base}/api/docs/")
        self.stdout.write(f"  Admin token:  {token}")
        self.stdout.write(f"  Service key:  {key}")
        if working.service_key:
            self.stdout.write(f"  Try:          curl -H 'X-API-Key: {key}' '{base}/api/ingest/logs' "
                              "-H 'Content-Type: application/json' -d '{\"type\": 5, \"content\": \"hello\"}'")
        self.stdout.write(f"  (stored in {path})")
        self.stdout.write("")

    @transaction.atomic
    def _create_credentials(self) -> dict[str, str]:
        """A new administrator (`admin`, or `admin-2`, `admin-3`… when the name is taken: an
        existing account is never changed), with a personal access token, and a service key."""
        User = get_user_model()
        taken = set(User.objects.filter(username__startswith=ADMIN_USERNAME).values_list("username", flat=True))
        username = next(
            name for n in range(1, len(taken) + 2)
            if (name := ADMIN_USERNAME if n == 1 else f"{ADMIN_USERNAME}-{n}") not in taken
        )
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        token = AccessToken(user=user, name="demo admin token")
        raw_token = token.set_new_secret()
        token.save()
        key = ServiceKey(name="demo service key")
        raw_key = key.set_new_secret()
        key.save()
        return {
            "username": user.username,
            "password": password,
            "token": raw_token,
            "service_key": raw_key,
            "joined": user.date_joined.isoformat(),
        }
