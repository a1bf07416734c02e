"""PostgreSQL plans of the queries a test captured, for tests that an index serves them."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection


def plan(sql: str, *, dear: Iterable[str]) -> str:
    """The EXPLAIN of SQL with the ways to read a table that DEAR names (planner
    settings such as "enable_seqscan") turned off for the current transaction: what the
    plan then shows is what the indexes left can do."""
    with connection.cursor() as cursor:
        for setting in dear:
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(line for (line,) in cursor.fetchall())
