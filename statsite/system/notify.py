"""What the ingest transaction does so that open event streams learn of new errors.

On PostgreSQL a transaction that stores error logs (type 4):

1. takes a transaction-level advisory lock, `ERRORS_LOCK`, right before it
   inserts its error rows as its last statement (logs.services), so such
   transactions commit one after another. Log ids come from a sequence, which
   hands them out in the order rows are inserted, not committed: without the
   lock, a batch holding id 10 could commit after one holding id 11, and a
   stream that had already sent 11 (and a client resuming after 11) would never
   see 10. With it, error ids grow in commit order, so "every error with an id
   above the last one sent" is exactly what a stream still owes, with no gap
   and no repeat. Only batches that hold errors wait on it, and only for each
   other's last insert and commit. A waiter holds row locks of its earlier
   inserts and of the rollup rows it has counted the batch in (error rows
   included, from their values), but the holder touches none of them in its
   last step (its rows are other records); a deadlock the database still
   detects is retried whole by statsite.ingest.store_batch.
2. then raises `pg_notify('statsite_errors', <highest new error id>)`, which
   PostgreSQL delivers to the listening hub at commit (and never, on rollback).

SQLite needs neither: its writers are serialised by the database lock (BEGIN
IMMEDIATE), and the hub polls.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

CHANNEL = "statsite_errors"
# An arbitrary fixed 64-bit key ("statErrs" in ASCII), so no other lock collides with it.
ERRORS_LOCK = 0x7374617445727273
ERROR_TYPE = 4  # logs.models.Log.Type.ERROR (not imported: logs imports this module)


def uses_notify() -> bool:
    return connection.vendor == "postgresql"


def serialise_error_commits(has_errors: bool) -> None:
    """Call right before inserting the error logs of an ingest transaction, as its last step."""
    if has_errors and uses_notify():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ERRORS_LOCK])


def announce_errors(rows: Iterable) -> None:
    """Call after storing ROWS (Log instances) in the ingest transaction."""
    if not uses_notify():
        return
    ids = [row.pk for row in rows if row.type == ERROR_TYPE and row.pk is not None]
    if ids:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(max(ids))])
