"""The benchmark harness end to end at a tiny scale, so that it cannot rot.

It generates a data set of a few thousand calls into a PostgreSQL database of its own
(beside the suite's), runs the whole harness against it with one server worker, a few
repeats, a small purge and a few streams, and checks that every measurement is there,
without errors and with its numbers. It does not judge the timing targets: those are
for `make bench` at scale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings

from bench.cases import Subjects, read_cases
from bench.report import TARGETS
from bench.run import CALIBRATION

ROOT = Path(__file__).resolve().parents[2]
SCALE = 3000
STREAMS = 3
RUN_TIMEOUT = 120


def server_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/postgres"


@pytest.fixture
def bench_database():
    """A database name no other test process uses; dropped afterwards."""
    import psycopg

    name = f"statsite_benchtest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def expected_names() -> list[str]:
    anyone = Subjects(now=datetime.now(UTC), username="u", user_id=1, model="m", token_name="t", channel=1, group="g",
                      chat_id="c", chat_pk=1, tool_id="tool", tool_name="Tool", relay_key="sk-x", deep_page=1)
    return [*CALIBRATION, *(case.name for case in read_cases(anyone))] + [
        "ingest 1000-record batches", "ingest single record", "purge under ingest", f"SSE fan-out {STREAMS} streams",
        "server RSS per worker at the end",
    ]


def run_harness(database: str, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    env["BENCH_PG_URL"] = server_url()
    command = [
        sys.executable, "-m", "bench.run", "--scale", str(SCALE), "--days", "3", "--database", database,
        "--workers", "1", "--repeat", "2", "--baseline-repeat", "1", "--clients", "2", "--ingest-batches", "1",
        "--singles", "3", "--purge-rows", "2000", "--streams", str(STREAMS), "--out", str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / f"results-{SCALE}.json").read_text())


@pytest.mark.postgres
@pytest.mark.skipif(not settings.IS_POSTGRES, reason="the benchmark runs on PostgreSQL")
def test_the_harness_measures_everything_without_errors(bench_database, tmp_path):
    report = run_harness(bench_database, tmp_path)

    results = {r["name"]: r for r in report["results"]}
    assert list(results) == expected_names()
    assert report["generation"]["rows"]["llm_calls"] > SCALE * 0.9
    assert (tmp_path / f"results-{SCALE}.md").exists()
    for name, r in results.items():
        assert r["errors"] == 0, (name, r["note"])
        assert r["verdict"] in ("ok", "—") or r["verdict"].startswith("MISSED"), name
        if r["target"] == "stats":
            assert r["p50_ms"] is not None and r["baseline_p50_ms"] is not None and r["ratio"] is not None, name
        elif name in ("ingest 1000-record batches", "purge under ingest"):
            assert r["rows_per_s"] > 0 and r["max_ms"] is not None, name
        elif name == "server RSS per worker at the end":
            assert r["rss_mb"] > 0
        else:
            assert r["p50_ms"] is not None and r["p95_ms"] is not None and r["max_ms"] is not None, name
        assert r["target"] is None or r["target"] in TARGETS

    # The rollups' partial indexes, dropped for the rebuild, are back and valid.
    import psycopg

    with psycopg.connect(server_url().rsplit("/", 1)[0] + f"/{bench_database}") as conn:
        partial = conn.execute(
            "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
            "WHERE indrelid = 'usage_llmrollup'::regclass AND indpred IS NOT NULL ORDER BY 1"
        ).fetchall()
    assert partial == [("llmrollup_model_hour_series", True), ("llmrollup_user_model_hour_series", True)]
