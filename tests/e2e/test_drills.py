"""Fault drills against the production server (uvicorn, 2 workers) on PostgreSQL.

Run with `make drills` (PostgreSQL at PG_TEST_URL); excluded from `make test`.
Each drill drives real client threads over loopback, injects one fault, and
then proves from the database itself that nothing acknowledged was lost:

- load: mixed ingest and reads for DRILL_SECONDS (default 60);
- crash: SIGKILL of the whole server during batch ingest, restart, resend;
- database restart: PostgreSQL stopped and started under load;
- purge under load: a purge runs while ingest runs.

Each prints its figures (requests, errors, records sent/acknowledged/found,
recovery time). Every loop is bounded in time.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.e2e.conftest import ROOT, START_TIMEOUT, Server, _free_port

pytestmark = [
    pytest.mark.drill,
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="the drills run against PostgreSQL, the production database (make drills)",
    ),
]

DRILL_SECONDS = float(os.environ.get("DRILL_SECONDS", "60"))
WORKERS = 2
# Per request: ingest of a batch, or a read. Longer than any healthy answer, shorter
# than the drill: a hung request shows up as a timeout, counted as an error.
REQUEST_TIMEOUT = 15.0
# The server's PostgreSQL connect timeout during the drills (DATABASE_CONNECT_TIMEOUT).
CONNECT_TIMEOUT = 3
BATCH = 20


# --- the server -------------------------------------------------------------------------------------------


@dataclass
class DrillServer:
    """A uvicorn server with WORKERS workers in its own process group, so a crash
    can take down the master and every worker at once."""

    server: Server
    directory: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.directory / "server.log", "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "statsite.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.server.port), "--workers", str(WORKERS), "--lifespan", "off",
             "--log-level", "warning"],
            cwd=ROOT, env=self.server.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "server.log").read_text()[-3000:])
            try:
                if get(self.server, "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not start in time")

    def kill(self) -> None:
        """SIGKILL to the master and its workers: no shutdown code runs."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def drill_server(database_url: str, directory: Path) -> Iterator[DrillServer]:
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))},
        "DATABASE_URL": database_url,
        "DATABASE_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        "STATSITE_VAR_DIR": str(directory / "var"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # The drills' readers hit these from one address far faster than a person would.
        "LOG_TOKEN_THROTTLE_RATE": "100000/min",
        "LOG_SEARCH_THROTTLE_RATE": "100000/min",
        "LOG_LEVEL": "WARNING",
    }
    server = Server(base=f"http://127.0.0.1:{_free_port()}", env=env)
    server.manage("migrate", "--noinput", "--verbosity", "0")
    running = DrillServer(server, directory)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def request(server: Server, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
            timeout: float = REQUEST_TIMEOUT) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        sent = {**(headers or {}), **({"Content-Type": "application/json"} if payload is not None else {})}
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get(server: Server, path: str, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, bytes]:
    return request(server, "GET", path, headers=headers, timeout=timeout)


def database_rows(database_url: str, request_ids: list[str]) -> dict[str, tuple]:
    """What the database holds for these request ids (read directly, not through the app)."""
    import psycopg

    found: dict[str, tuple] = {}
    url = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, connect_timeout=10) as conn:
        for start in range(0, len(request_ids), 5000):
            chunk = request_ids[start:start + 5000]
            rows = conn.execute(
                "SELECT request_id, username, model_name, prompt_tokens, completion_tokens, quota, type "
                "FROM logs_log WHERE request_id = ANY(%s)", (chunk,),
            ).fetchall()
            for row in rows:
                assert row[0] not in found, f"{row[0]} stored twice"
                found[row[0]] = tuple(row[1:])
    return found


def count_logs(database_url: str, where: str = "TRUE", params: tuple = ()) -> int:
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), connect_timeout=10) as conn:
        return conn.execute(f"SELECT count(*) FROM logs_log WHERE {where}", params).fetchone()[0]


def rollups_clean(server: Server) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "rollups", "check"], cwd=ROOT, env=server.env, capture_output=True,
        text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def credentials(server: Server) -> dict[str, str]:
    key = server.manage("create_api_key", "drill").strip().splitlines()[-1]
    admin = server.manage("issue_token", "drill-admin", "--admin").strip().splitlines()[-1]
    user = server.manage("issue_token", "drill-user").strip().splitlines()[-1]
    return {"key": key, "admin": admin, "user": user}


# --- clients ------------------------------------------------------------------------------------------------


# The relay keys the LLM calls name; the first record that names one creates it.
RELAY_KEYS = ("sk-drill-aaaa1111", "sk-drill-bbbb2222")


def record(request_id: str, rng: random.Random, created_at: datetime | None = None) -> dict[str, Any]:
    success = rng.random() > 0.1
    body = {
        "request_id": request_id,
        "username": rng.choice(["drill-user", "ann", "ben", "cho"]),
        "model_name": rng.choice(["gpt-4o", "claude-3", "qwen-max"]),
        "token_key": rng.choice(RELAY_KEYS),
        "channel_id": rng.choice([1, 2]),
        "channel_name": "",
        "prompt_tokens": rng.randrange(0, 4000),
        "completion_tokens": rng.randrange(0, 1000),
        "quota": rng.randrange(0, 100_000),
        "latency_ms": rng.randrange(20, 9000),
        "success": success,
    }
    body.pop("channel_name")
    if not success:
        body["error"] = "upstream 502"
    if created_at is not None:
        body["created_at"] = created_at.isoformat()
    return body


def expected_row(rec: dict[str, Any]) -> tuple:
    return (rec["username"], rec["model_name"], rec["prompt_tokens"], rec["completion_tokens"], rec["quota"],
            2 if rec["success"] else 4)


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # connection errors and timeouts, by kind
    sent: dict[str, dict] = field(default_factory=dict)  # every record ever sent, by request id
    acknowledged: set[str] = field(default_factory=set)
    unacknowledged: list[list[dict]] = field(default_factory=list)  # batches without a 201
    slowest_refusal: float = 0.0
    first_ok_after: dict[str, float] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)

    def note(self, status: int, path: str, body: bytes, elapsed: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status >= 500 and status != 503:
                self.server_errors.append(f"{status} {path}: {body[:200]!r}")
            if status == 503:
                self.slowest_refusal = max(self.slowest_refusal, elapsed)

    def fail(self, kind: str) -> None:
        with self.lock:
            self.failures[kind] += 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.failures.values())


def ingest_client(server: Server, key: str, tally: Tally, stop: threading.Event, name: str, seed: int,
                  created_at: datetime | None = None) -> None:
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        batch = [record(f"{name}-{n + i}", rng, created_at) for i in range(BATCH)]
        n += BATCH
        if not send_batch(server, key, batch, tally):
            # As a real client would: back off a little before the next batch.
            stop.wait(0.2)


def send_batch(server: Server, key: str, batch: list[dict], tally: Tally) -> bool:
    with tally.lock:
        for rec in batch:
            tally.sent[rec["request_id"]] = rec
    started = time.monotonic()
    try:
        status, body = request(server, "POST", "/api/ingest/llm-calls", batch, {"X-API-Key": key})
    except (OSError, http.client.HTTPException) as exc:
        tally.fail(type(exc).__name__)
        with tally.lock:
            tally.unacknowledged.append(batch)
        return False
    tally.note(status, "/api/ingest/llm-calls", body, time.monotonic() - started)
    if status == 201:
        answer = json.loads(body)
        assert answer["received"] == len(batch), answer
        with tally.lock:
            tally.acknowledged.update(rec["request_id"] for rec in batch)
        return True
    with tally.lock:
        tally.unacknowledged.append(batch)
    return False


READS = [
    ("/api/log/?page_size=50", "admin"),
    ("/api/log/self?page_size=20", "user"),
    ("/api/log/stat?type=2", "admin"),
    ("/api/log/search?keyword=error", "admin"),
    (f"/api/log/token?key={RELAY_KEYS[0]}&page_size=100", None),
    ("/api/data/", "admin"),
    ("/api/stats/models?period=day", "key"),
    ("/api/stats/channels", "key"),
    ("/llm/stats?period_type=last_hour&group_by=user", "key"),
    ("/api/logs/errors?limit=100", "key"),
    ("/api/system/health", "key"),
]


def reader_client(server: Server, creds: dict[str, str], tally: Tally, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        path, who = rng.choice(READS)
        headers = {}
        if who == "key":
            headers = {"X-API-Key": creds["key"]}
        elif who is not None:
            headers = {"Authorization": f"Bearer {creds[who]}"}
        started = time.monotonic()
        try:
            status, body = request(server, "GET", path, headers=headers)
        except (OSError, http.client.HTTPException) as exc:
            tally.fail(type(exc).__name__)
            continue
        tally.note(status, path, body, time.monotonic() - started)
        # /api/system/health documents its 503 when the database is down.
        if status not in (200, 503):
            with tally.lock:
                tally.server_errors.append(f"unexpected {status} {path}: {body[:200]!r}")


def run_clients(targets: list[threading.Thread], seconds: float, stop: threading.Event) -> None:
    for thread in targets:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in targets:
        thread.join(REQUEST_TIMEOUT + 5)
        assert not thread.is_alive(), "a client thread hung"


def resend_until_acknowledged(server: Server, key: str, tally: Tally, deadline_seconds: float = 120) -> int:
    """Retry every batch without a 201 (retrying is always safe: request ids)."""
    pending, tally.unacknowledged = tally.unacknowledged, []
    deadline = time.monotonic() + deadline_seconds
    resent = 0
    while pending:
        assert time.monotonic() < deadline, (
            f"{len(pending)} batches still unacknowledged: {dict(tally.statuses)} {dict(tally.failures)}"
            f" {tally.server_errors[-3:]}"
        )
        batch = pending.pop()
        resent += 1
        if not send_batch(server, key, batch, tally):
            pending.append(tally.unacknowledged.pop())
            time.sleep(0.2)
    return resent


def prove_acknowledged_records_stored(database_url: str, tally: Tally) -> dict[str, tuple]:
    acknowledged = sorted(tally.acknowledged)
    found = database_rows(database_url, acknowledged)
    missing = [rid for rid in acknowledged if rid not in found]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
    wrong = [rid for rid in acknowledged if found[rid] != expected_row(tally.sent[rid])]
    assert not wrong, f"{len(wrong)} records differ from what was sent, e.g. {wrong[:3]}"
    return found


def report(name: str, **figures: Any) -> None:
    line = ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\nDRILL {name}: {line}", flush=True)


# --- the drills ----------------------------------------------------------------------------------------------


@pytest.fixture
def drill_dir(tmp_path) -> Path:
    return tmp_path


def test_load_mixed_ingest_and_reads_loses_nothing(server_database, drill_dir):
    with drill_server(server_database, drill_dir) as running:
        server = running.server
        creds = credentials(server)
        tally, stop = Tally(), threading.Event()
        # The public token lookup answers 401 for a relay key no record has named yet:
        # one record per key first, so no reader asks before its key exists.
        rng = random.Random(0)
        first = [record(f"load-keys-{n}", rng) | {"token_key": key} for n, key in enumerate(RELAY_KEYS)]
        assert send_batch(server, creds["key"], first, tally)
        threads = [threading.Thread(target=ingest_client, args=(server, creds["key"], tally, stop, f"load{n}", n))
                   for n in range(4)]
        threads += [threading.Thread(target=reader_client, args=(server, creds, tally, stop, 100 + n))
                    for n in range(4)]
        started = time.monotonic()
        run_clients(threads, DRILL_SECONDS, stop)
        elapsed = time.monotonic() - started
        assert not tally.server_errors, tally.server_errors[:10]
        assert tally.statuses[503] == 0 and not tally.failures, (tally.statuses, tally.failures)
        found = prove_acknowledged_records_stored(server_database, tally)
        # Nothing was refused, so everything sent was acknowledged and is there.
        assert len(tally.acknowledged) == len(tally.sent)
        assert count_logs(server_database, "request_id LIKE 'load%%'") == len(tally.acknowledged)
        rollups_clean(server)
        report(
            "load", seconds=round(elapsed), workers=WORKERS, clients=len(threads), requests=tally.requests,
            requests_per_second=round(tally.requests / elapsed), statuses=dict(tally.statuses),
            errors_5xx=sum(v for k, v in tally.statuses.items() if k >= 500),
            records_sent=len(tally.sent), acknowledged=len(tally.acknowledged), found=len(found),
        )


def test_crash_during_batch_ingest_keeps_every_acknowledged_batch_whole_and_once(server_database, drill_dir):
    with drill_server(server_database, drill_dir) as running:
        server = running.server
        creds = credentials(server)
        tally, stop = Tally(), threading.Event()
        threads = [threading.Thread(target=ingest_client, args=(server, creds["key"], tally, stop, f"crash{n}", n))
                   for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(min(5.0, DRILL_SECONDS / 4))
        running.kill()
        killed_at = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 5)
            assert not thread.is_alive()
        in_flight = list(tally.unacknowledged)
        assert in_flight, "the crash interrupted no batch; the drill proved nothing"

        # No partial batch: each interrupted batch is in the database whole or not at all.
        committed_anyway = 0
        for batch in in_flight:
            present = database_rows(server_database, [rec["request_id"] for rec in batch])
            assert len(present) in (0, len(batch)), f"a batch was stored in part: {len(present)} of {len(batch)}"
            committed_anyway += bool(present)

        running.start()
        recovery = time.monotonic() - killed_at
        resent = resend_until_acknowledged(server, creds["key"], tally)
        assert not tally.server_errors, tally.server_errors[:10]
        found = prove_acknowledged_records_stored(server_database, tally)
        # Exactly once: one row per request id, and no other row of the drill's.
        assert count_logs(server_database, "request_id LIKE 'crash%%'") == len(tally.acknowledged) == len(tally.sent)
        rollups_clean(server)
        report(
            "crash", requests=tally.requests, statuses=dict(tally.statuses), connection_errors=dict(tally.failures),
            interrupted_batches=len(in_flight), interrupted_but_committed=committed_anyway, resent_batches=resent,
            records_sent=len(tally.sent), acknowledged=len(tally.acknowledged), found=len(found),
            restart_seconds=round(recovery, 1),
        )


def _pg_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    return versions[-1]


def _pg(action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", action],
                   check=True, capture_output=True, timeout=60)


def _pg_ready(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.mark.skipif(not os.path.isdir("/etc/postgresql") or os.geteuid() != 0,
                    reason="restarting PostgreSQL needs the local cluster and root")
def test_database_restart_under_load_gives_503_then_recovers_by_itself(server_database, drill_dir):
    with drill_server(server_database, drill_dir) as running:
        server = running.server
        creds = credentials(server)
        tally, stop = Tally(), threading.Event()
        threads = [threading.Thread(target=ingest_client, args=(server, creds["key"], tally, stop, f"pg{n}", n))
                   for n in range(2)]
        threads += [threading.Thread(target=reader_client, args=(server, creds, tally, stop, 200 + n))
                    for n in range(2)]
        for thread in threads:
            thread.start()
        down_seconds = 0.0
        recovery = None
        try:
            time.sleep(3)
            _pg("stop")
            stopped = time.monotonic()
            # While it is down: answers are prompt 503s, not hangs and not 500s.
            down_answers = Counter()
            while time.monotonic() - stopped < 6:
                begun = time.monotonic()
                status, _ = get(server, "/api/stats/models", {"X-API-Key": creds["key"]},
                                timeout=CONNECT_TIMEOUT + 10)
                assert time.monotonic() - begun < CONNECT_TIMEOUT + 5, "a request hung on the dead database"
                down_answers[status] += 1
                time.sleep(0.2)
            down_seconds = time.monotonic() - stopped
        finally:
            _pg("start")
        started = time.monotonic()
        try:
            deadline = started + 60
            while time.monotonic() < deadline:
                if get(server, "/api/stats/models", {"X-API-Key": creds["key"]})[0] == 200:
                    recovery = time.monotonic() - started
                    break
                time.sleep(0.2)
            # Let the clients run on the recovered database for a moment.
            time.sleep(3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT + 5)
        assert down_answers and set(down_answers) == {503}, down_answers
        assert recovery is not None, "the server did not recover without a restart"
        assert not tally.server_errors, tally.server_errors[:10]
        resent = resend_until_acknowledged(server, creds["key"], tally)
        found = prove_acknowledged_records_stored(server_database, tally)
        assert count_logs(server_database, "request_id LIKE 'pg%%'") == len(tally.acknowledged) == len(tally.sent)
        rollups_clean(server)
        report(
            "database restart", requests=tally.requests, statuses=dict(tally.statuses),
            connection_errors=dict(tally.failures), down_seconds=round(down_seconds, 1),
            answers_while_down=dict(down_answers), slowest_503_seconds=round(tally.slowest_refusal, 2),
            recovery_seconds=round(recovery, 2), resent_batches=resent, records_sent=len(tally.sent),
            acknowledged=len(tally.acknowledged), found=len(found),
        )


def test_purge_under_load_loses_nothing_newer_than_the_cutoff(server_database, drill_dir):
    with drill_server(server_database, drill_dir) as running:
        server = running.server
        creds = credentials(server)
        old_tally = Tally()
        old = datetime.now(timezone.utc) - timedelta(days=10)
        rng = random.Random(7)
        for n in range(0, 6000, 500):
            assert send_batch(server, creds["key"], [record(f"old-{n + i}", rng, old) for i in range(500)], old_tally)
        cutoff = int((datetime.now(timezone.utc) - timedelta(days=1)).timestamp())

        tally, stop = Tally(), threading.Event()
        threads = [threading.Thread(target=ingest_client, args=(server, creds["key"], tally, stop, f"new{n}", n))
                   for n in range(3)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1)
            started = time.monotonic()
            status, body = request(server, "DELETE", f"/api/log/?target_timestamp={cutoff}",
                                   headers={"Authorization": f"Bearer {creds['admin']}"}, timeout=120)
            purge_seconds = time.monotonic() - started
            time.sleep(1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT + 5)
        assert status == 200, body
        deleted = json.loads(body)["data"]
        assert deleted >= 6000
        assert count_logs(server_database, "request_id LIKE 'old-%%'") == 0
        assert not tally.server_errors and not tally.failures, (tally.server_errors[:5], tally.failures)
        found = prove_acknowledged_records_stored(server_database, tally)
        assert len(tally.acknowledged) == len(tally.sent)
        rollups_clean(server)
        report(
            "purge under load", old_records=6000, purged=deleted, purge_seconds=round(purge_seconds, 2),
            requests=tally.requests, statuses=dict(tally.statuses), records_sent=len(tally.sent),
            acknowledged=len(tally.acknowledged), found=len(found),
        )
