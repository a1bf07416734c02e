"""Delete old raw rows: logs, tool calls or chat messages.

    manage.py purge logs --older-than 30d [--type 2] [--batch-size 5000] [--dry-run]
    manage.py purge messages --before 2024-01-01
    manage.py purge --retention [--dry-run]      # from cron: the *_RETENTION_DAYS settings

The cutoff is computed once and printed; the rows to go are counted once; the
delete is `logs.services.purge` (oldest first, each batch its own short
transaction), the same code the API and the admin purge page run. Rollups are
never touched, so statistics over purged periods stay answerable.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from logs.models import Log
from logs.services import PURGE_KINDS, purge, purgeable
from statsite.management.progress import terminal_bar
from statsite.timeparse import iso_utc, parse_age, parse_instant

LABELS = {"logs": "logs", "tool-calls": "tool calls", "messages": "messages"}
RETENTION_SETTINGS = {
    "logs": "LOG_RETENTION_DAYS",
    "tool-calls": "TOOL_CALL_RETENTION_DAYS",
    "messages": "MESSAGE_RETENTION_DAYS",
}


class Command(BaseCommand):
    help = (
        "Delete logs, tool calls or messages created before a cutoff (--before ISO or --older-than 30d/12h/2w), "
        "in batches, oldest first; or, with --retention, apply LOG_RETENTION_DAYS, TOOL_CALL_RETENTION_DAYS and "
        "MESSAGE_RETENTION_DAYS. --dry-run only counts. Rollups are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", nargs="?", choices=PURGE_KINDS, help="What to purge (not with --retention).")
        parser.add_argument("--before", metavar="ISO", help="Cutoff as ISO 8601, e.g. 2024-01-31 or 2024-01-31T12:00Z.")
        parser.add_argument("--older-than", metavar="AGE", help="Cutoff as an age: N followed by h, d or w (30d).")
        parser.add_argument(
            "--type", dest="log_type", metavar="N", help="Logs only: just this type (1 top-up, 2 consume, "
            "3 manage, 4 error, 5 system)."
        )
        parser.add_argument("--batch-size", default="5000", metavar="N", help="Rows per delete (default 5000).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")
        parser.add_argument(
            "--retention", action="store_true", help="Apply the *_RETENTION_DAYS settings to every kind."
        )

    def handle(
        self,
        *args,
        kind: str | None,
        before: str | None,
        older_than: str | None,
        log_type: str | None,
        batch_size: str,
        dry_run: bool,
        retention: bool,
        verbosity: int,
        **options,
    ) -> None:
        self.verbosity = verbosity
        batch = _whole_number(batch_size, "--batch-size")
        now = timezone.now()  # one clock reading for every cutoff of this run

        if retention:
            if kind or before or older_than or log_type:
                raise CommandError(
                    "--retention takes no kind, --before, --older-than or --type: "
                    "it reads LOG_RETENTION_DAYS, TOOL_CALL_RETENTION_DAYS and MESSAGE_RETENTION_DAYS."
                )
            self._apply_retention(now=now, batch_size=batch, dry_run=dry_run)
            return

        if kind is None:
            raise CommandError(f"Say what to purge: one of {', '.join(PURGE_KINDS)} (or use --retention).")
        only_type = _log_type(kind, log_type)
        cutoff = _cutoff(before=before, older_than=older_than, now=now)
        self._say(f"cutoff: {iso_utc(cutoff)}")
        self._purge(kind, cutoff=cutoff, log_type=only_type, batch_size=batch, dry_run=dry_run)

    def _apply_retention(self, *, now: datetime, batch_size: int, dry_run: bool) -> None:
        for kind in PURGE_KINDS:
            setting = RETENTION_SETTINGS[kind]
            days = getattr(settings, setting, None)
            if days is None:
                self._say(f"{LABELS[kind]}: {setting} is not set, keeping all")
                continue
            cutoff = (now - timedelta(days=days)).replace(microsecond=0)
            self._say(f"{LABELS[kind]}: keeping {days} days ({setting}), cutoff {iso_utc(cutoff)}")
            self._purge(kind, cutoff=cutoff, log_type=None, batch_size=batch_size, dry_run=dry_run)

    def _purge(self, kind: str, *, cutoff: datetime, log_type: int | None, batch_size: int, dry_run: bool) -> None:
        what = LABELS[kind] if log_type is None else f"logs of type {log_type} ({Log.Type(log_type).label})"
        what = f"{what} created before {iso_utc(cutoff)}"
        count = purgeable(kind, before=cutoff, log_type=log_type).count()
        self._say(f"{LABELS[kind]}: {count} rows to purge")
        if dry_run:
            self._say(f"dry run: would purge {count} {what}")
            return
        deleted = 0
        if count:
            with terminal_bar(self, self.verbosity, total=count, unit="rows", desc=LABELS[kind]) as bar:
                deleted = purge(kind, before=cutoff, log_type=log_type, batch_size=batch_size, progress=bar.update)
        self._say(f"purged {deleted} {what}")

    def _say(self, line: str) -> None:
        if self.verbosity > 0:
            self.stdout.write(line)


def _whole_number(text: str, option: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise CommandError(f"{option} must be a whole number, not {text!r}.") from None
    if value < 1:
        raise CommandError(f"{option} must be at least 1, not {value}.")
    return value


def _cutoff(*, before: str | None, older_than: str | None, now: datetime) -> datetime:
    if (before is None) == (older_than is None):
        raise CommandError("Give exactly one of --before ISO or --older-than AGE (e.g. --older-than 30d).")
    try:
        if before is not None:
            return parse_instant(before)
        # Whole seconds, so the printed cutoff is exactly the one used.
        return (now - parse_age(older_than or "")).replace(microsecond=0)
    except (ValueError, OverflowError) as exc:
        option = "--before" if before is not None else "--older-than"
        raise CommandError(f"{option}: {exc}") from None


def _log_type(kind: str, text: str | None) -> int | None:
    if text is None:
        return None
    if kind != "logs":
        raise CommandError("--type only applies to logs.")
    valid = [str(t.value) for t in Log.Type]
    if text.strip() not in valid:
        choices = ", ".join(f"{t.value} {t.label}" for t in Log.Type)
        raise CommandError(f"--type must be one of {choices}; not {text!r}.")
    return int(text)
