"""`manage.py rollups rebuild|check [--since ISO] [--kind llm|tools|messages]`."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from statsite.management.progress import follow, terminal_bar
from statsite.timeparse import iso_utc, parse_instant
from usage import rollups

SHOWN_DIFFERENCES = 50


class Command(BaseCommand):
    help = (
        "rebuild: recompute the rollups from the raw facts, a slice of time at a time (ingest of the "
        "kind and purges wait only for the slice being rebuilt; --since keeps it short). "
        "check: compare them with the facts, each grain as of one instant; exits non-zero on any difference, "
        "printing it. Buckets before a purge horizon are history (their raw rows are gone) and are "
        "left alone."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["rebuild", "check"])
        parser.add_argument("--since", help="Only buckets from this instant's hour on (ISO 8601).")
        parser.add_argument(
            "--kind", choices=rollups.ROLLUP_KINDS, action="append",
            help="Only this kind of rollup (repeatable; default all).",
        )

    def handle(self, *args, action: str, since: str | None, kind: list[str] | None, **options) -> None:
        try:
            start = parse_instant(since) if since else None
        except ValueError as exc:
            raise CommandError(f"--since: {exc}") from exc
        kinds = kind or list(rollups.ROLLUP_KINDS)
        verbosity = options.get("verbosity", 1)
        failed = 0
        for name in kinds:
            begin = rollups.rebuildable_from(name, start)
            scope = f"from {iso_utc(begin)}" if begin else "all buckets"
            started = time.monotonic()
            with terminal_bar(self, verbosity, unit="step", desc=name, leave=False) as bar:
                progress = follow(bar)
                if action == "rebuild":
                    written = rollups.rebuild(name, since=start, progress=progress)
                else:
                    # Counted as they come, the first few kept: however many there are.
                    shown, found = [], 0
                    for difference in rollups.differences(name, since=start, progress=progress):
                        found += 1
                        if len(shown) < SHOWN_DIFFERENCES:
                            shown.append(difference)
            if action == "rebuild":
                self.stdout.write(
                    f"{name}: rebuilt {written} rollup rows ({scope}) in {time.monotonic() - started:.1f}s"
                )
                continue
            if not found:
                self.stdout.write(f"{name}: rollups agree with the facts ({scope})")
                continue
            failed += found
            self.stdout.write(f"{name}: {found} differences ({scope}):")
            for difference in shown:
                self.stdout.write(f"  {difference}")
            if found > SHOWN_DIFFERENCES:
                self.stdout.write(f"  … and {found - SHOWN_DIFFERENCES} more")
        if failed:
            raise CommandError(f"rollups disagree with the facts in {failed} places; `rollups rebuild` repairs them")
