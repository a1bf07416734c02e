"""What the usage tests share: the raw rows' answer computed in Python, the comparison
of an answer with it, and the rollups' own check."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from logs.models import Log
from usage import rollups
from usage.rollups import latency_bucket


def expected_llm(start, end, group_by, series, tz, rows=None) -> dict:
    """What a scan of the raw rows says, computed in Python from every row (of ROWS, a
    Log queryset, default every LLM call; START and END may be None: open)."""
    out: dict = defaultdict(lambda: defaultdict(int))
    for row in (rows if rows is not None else Log.objects.llm_calls()).between(start, end):
        key = tuple(
            getattr(row, name) or (0 if name.endswith("_id") and name != "chat_id" else "") for name in group_by
        )
        if series == "hour":
            key += (row.created_at.replace(minute=0, second=0, microsecond=0),)
        elif series == "day":
            key += (row.created_at.astimezone(tz).date(),)
        acc = out[key]
        acc["requests"] += 1
        acc["errors"] += int(not row.success)
        acc["prompt_tokens"] += row.prompt_tokens
        acc["completion_tokens"] += row.completion_tokens
        acc["quota"] += row.quota if row.type == Log.Type.CONSUME else 0
        acc["cost"] += Decimal(row.cost)
        acc["latency_count"] += int(row.latency_ms is not None)
        acc["latency_sum_ms"] += row.latency_ms or 0
        bucket = latency_bucket(row.latency_ms)
        if bucket is not None:
            acc[f"lat_{bucket:02d}"] += 1
        acc["last_at"] = max(acc["last_at"] or row.created_at, row.created_at)
    return out


def assert_same(got: list[dict], want: dict, keys: list[str], compared=None) -> None:
    got_by_key = {tuple(row[k] for k in keys): row for row in got}
    assert list(got_by_key) == sorted(want)  # each group once, sorted by the group keys
    for key, acc in want.items():
        for name in compared or [n for n in acc if n != "cost"]:
            assert got_by_key[key][name] == acc[name], (key, name)


def check_clean(kind: str = "llm") -> None:
    differences = rollups.check(kind)
    assert differences == [], [str(d) for d in differences[:10]]
