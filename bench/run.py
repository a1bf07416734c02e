"""The benchmark: statsite at scale, measured through HTTP, beside a raw-scan baseline.

    make bench                      # SCALE=1000000 by default
    make bench SCALE=10000000
    python -m bench.run --scale 200000 --repeat 10 --purge-rows 100000 --streams 50

1. Generates or reuses the data set (bench/generate.py; --database names another database).
2. Starts the production server as a user would: uvicorn, one worker per core (--workers).
3. Times every read endpoint of the API documents one request at a time (p50, p95 and
   max of --repeat requests) and, for each statistic, its raw-scan baseline: the same
   numbers from SQL over the raw fact tables, in the same run (bench/cases.py).
4. Ingest: 1000-record batches from --clients concurrent clients, records drawn from the
   data set's own population and created now; then single records one at a time.
5. A purge of --purge-rows old rows through DELETE /api/log/ while the clients keep
   ingesting: its rows/s, the slowest ingest request meanwhile, and whether every
   acknowledged record is stored.
6. SSE fan-out: --streams event streams at once, each one's time to its first event.
7. Prints the table; writes results-<scale>.json and .md under --out (var/bench), and
   compare.md when results of several scales are there (bench/report.py).
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bench import world
from bench.cases import Case, Subjects, read_cases, unix
from bench.generate import (
    BENCH_SECRET_KEY, FACT_COLUMNS, ROOT, DataSet, Renderer, build, dataset_arguments, dataset_from, dimension_ids,
    generation_report,
)
from bench.report import Report, Result, text_header, write
from bench.world import Population

if TYPE_CHECKING:
    from psycopg import Connection

HOST = "127.0.0.1"
SERVICE_KEY = "bench-service-key-0123456789abcdef0123456789abcdef"
INGEST_PATH = "/api/ingest/llm-calls"
BATCH_SIZE = 1000
PURGE_BATCH_SIZE = 100  # records per ingest request while the purge runs
OLD_DATA_DAYS = 400  # the purged rows are this old: long before the data set begins
HTTP_TIMEOUT = 300


# --- HTTP --------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection to the server; reconnects once when it drops."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT)

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, bytes]:
        all_headers = {"Host": "localhost", **headers}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """The production server as a user starts it (uvicorn, WORKERS processes), on the bench database."""

    def __init__(self, dataset: DataSet, workers: int, log_path: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": dataset.url,
            "STATSITE_API_KEYS": SERVICE_KEY,
            "SECRET_KEY": BENCH_SECRET_KEY,
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            # The benchmark measures the endpoints, not the abuse limits in front of them.
            "LOG_SEARCH_THROTTLE_RATE": "1000000/min",
            "LOG_TOKEN_THROTTLE_RATE": "1000000/min",
            "LOG_LEVEL": "WARNING",
        }
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "statsite.asgi:application", "--host", HOST, "--port", str(self.port),
             "--workers", str(workers), "--lifespan", "off", "--no-access-log"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.wait_until_up(log_path)

    def wait_until_up(self, log_path: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if Client(self.port).request("GET", "/healthz", {})[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not start; see {log_path}")

    def rss_mb(self) -> list[float]:
        """Resident memory of each worker (the master when it serves alone)."""
        import psutil

        master = psutil.Process(self.proc.pid)
        workers = [p for p in master.children() if "resource_tracker" not in " ".join(p.cmdline())]
        return [round(p.memory_info().rss / 2**20, 1) for p in workers or [master]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# --- measuring ---------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(fn: Callable[[], bool], repeat: int, warmup: int) -> tuple[list[float], int]:
    """Milliseconds of REPEAT calls of FN one after another (after WARMUP untimed ones), and how many failed."""
    for _ in range(warmup):
        fn()
    samples, errors = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        ok = fn()
        samples.append((time.perf_counter() - began) * 1000)
        errors += 0 if ok else 1
    return samples, errors


def latency(name: str, samples: list[float], errors: int, target: str | None = None, note: str = "") -> Result:
    if not samples:
        return Result(name, target, errors=errors or 1, note=note or "no samples")
    return Result(name, target, round(statistics.median(samples), 1), round(percentile(samples, 0.95), 1),
                  round(max(samples), 1), errors=errors, note=note)


@dataclass
class Run:
    """Everything the measurements share."""

    server: Server
    report: Report
    pop: Population
    callers: dict[str, dict[str, str]]
    db: Connection  # to the bench database: autocommit, UTC
    args: argparse.Namespace
    run_id: str

    def client(self) -> Client:
        return Client(self.server.port)


def measure_read(run: Run, client: Client, case: Case) -> Result:
    method, body = ("POST", json.dumps(case.body).encode()) if case.body is not None else ("GET", None)
    headers = run.callers[case.caller]
    samples, errors = timed(lambda: client.request(method, case.path, headers, body)[0] == 200,
                            run.args.repeat, warmup=2)
    result = latency(case.name, samples, errors, case.target, case.note)
    if case.total:
        check_total(run, client, case, result)
    return result


def check_total(run: Run, client: Client, case: Case, result: Result) -> None:
    """The list's total must be the exact count of its rows."""
    status, payload = client.request("GET", case.path, run.callers[case.caller])
    expected = run.db.execute(case.total, case.params).fetchone()[0]
    got = json.loads(payload).get("data", {}).get("total") if status == 200 else None
    checked = f"total {expected:,}" if got == expected else f"total {got} but {expected:,} rows"
    result.note = ", ".join(filter(None, (result.note, checked)))
    result.errors += int(got != expected)


def measure_baseline(run: Run, case: Case, result: Result) -> None:
    import psycopg

    def scan() -> bool:
        for sql in case.baseline:
            run.db.execute(sql, case.params).fetchall()
        return True

    try:
        samples, _ = timed(scan, run.args.baseline_repeat, warmup=1)
    except psycopg.Error as exc:
        result.errors += 1
        result.note = f"baseline failed: {exc}".splitlines()[0]
        return
    result.baseline_p50_ms = round(statistics.median(samples), 1)
    if result.p50_ms:
        result.ratio = round(result.baseline_p50_ms / result.p50_ms, 1)


def run_reads(run: Run, subjects: Subjects) -> None:
    """Every read through HTTP, then every raw-scan baseline: a scan's aftermath (its
    pages pushed out of PostgreSQL's cache, its writes of hint bits and temporary
    files) is the peer's own cost and stays out of the next read's measurement."""
    client = run.client()
    measured = []
    for case in read_cases(subjects):
        result = measure_read(run, client, case)
        print(f"  {case.name}: p50 {result.p50_ms} ms", flush=True)
        measured.append((case, result))
    print("  the raw-scan baselines…", flush=True)
    for case, result in measured:
        if case.baseline:
            measure_baseline(run, case, result)
        run.report.add(result)


# --- ingest ------------------------------------------------------------------------------------


class Feed:
    """LLM call records as a gateway sends them: drawn from the data set's population
    (the same accounts, their favourite models and own keys, channels), created now."""

    def __init__(self, pop: Population, prefix: str) -> None:
        self.pop = pop
        self.prefix = prefix
        self.rng = random.Random(prefix)
        self.serial = itertools.count()

    def batch(self, size: int) -> list[dict]:
        now = datetime.now(UTC).isoformat()
        return [self.record(now) for _ in range(size)]

    def record(self, created_at: str) -> dict:
        pop = self.pop
        call = pop.llm_call(self.rng)
        account = pop.accounts[call.account]
        key = pop.keys[call.key]
        record = {
            "request_id": f"{self.prefix}-{next(self.serial)}", "created_at": created_at,
            "username": account.username, "token_key": key.raw, "token_name": key.name,
            "model_name": pop.models[call.model], "channel_id": call.channel + 1, "group": account.group,
            "ip": account.ip, "prompt_tokens": call.prompt, "completion_tokens": call.completion,
            "latency_ms": call.latency_ms, "is_stream": call.stream, "module": call.module,
            "request_type": call.request_type,
        }
        if call.chat is not None:
            record["chat_id"] = pop.chats[call.chat].chat_id
        if not call.ok:
            record |= {"success": False, "error": "upstream error: rate limit exceeded"}
        return record


def found(run: Run, request_ids: list[str]) -> int:
    return run.db.execute("SELECT count(*) FROM logs_log WHERE request_id = ANY(%s)", [request_ids]).fetchone()[0]


class Tally:
    """Ingest requests of several clients: their milliseconds, what was acknowledged, what failed."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.lock = threading.Lock()
        self.samples: list[float] = []
        self.acknowledged: list[str] = []
        self.failures = 0

    def post(self, client: Client, records: list[dict], body: bytes | None = None) -> None:
        began = time.perf_counter()
        status, _ = client.request("POST", INGEST_PATH, self.run.callers["service"],
                                   body or json.dumps(records).encode())
        with self.lock:
            self.samples.append((time.perf_counter() - began) * 1000)
            if status == 201:
                self.acknowledged.extend(r["request_id"] for r in records)
            else:
                self.failures += 1

    def outcome(self) -> tuple[int, str]:
        """Errors (refused requests and acknowledged records not stored) and a note saying so."""
        stored = found(self.run, self.acknowledged)
        note = f"acknowledged {len(self.acknowledged):,}, found {stored:,}, refused requests {self.failures}"
        return self.failures + len(self.acknowledged) - stored, note


def ingest_batches(run: Run) -> None:
    """--clients clients each send --ingest-batches batches of 1000, bodies made beforehand
    so that the clients' own work does not count."""
    args = run.args
    work = [
        [(batch, json.dumps(batch).encode()) for batch in
         (feed.batch(BATCH_SIZE) for _ in range(args.ingest_batches))]
        for feed in (Feed(run.pop, f"{run.run_id}-batch-{c}") for c in range(args.clients))
    ]
    tally = Tally(run)

    def send(batches: list[tuple[list[dict], bytes]]) -> None:
        client = run.client()
        for records, body in batches:
            tally.post(client, records, body)

    began = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(send, work))
    elapsed = time.perf_counter() - began
    errors, outcome = tally.outcome()
    result = latency("ingest 1000-record batches", tally.samples, errors, "ingest batches",
                     f"{args.clients} clients x {args.ingest_batches} batches in {elapsed:.1f}s; {outcome}")
    result.rows_per_s = round(len(tally.acknowledged) / elapsed)
    run.report.add(result)


def ingest_singles(run: Run) -> None:
    feed = Feed(run.pop, f"{run.run_id}-single")
    client = run.client()

    def post() -> bool:
        body = json.dumps(feed.batch(1)[0]).encode()
        return client.request("POST", INGEST_PATH, run.callers["service"], body)[0] == 201

    samples, errors = timed(post, run.args.singles, warmup=5)
    run.report.add(latency("ingest single record", samples, errors, "ingest single"))


# --- purge under ingest ------------------------------------------------------------------------


def insert_old_rows(run: Run, rows: int, start: datetime, hours: int) -> None:
    """ROWS realistic log rows over HOURS hours from START, long before the data set begins."""
    renderer = Renderer(run.pop, dimension_ids(run.pop))
    per_hour = rows / hours / (1 + world.OTHER_LOG_SHARE)
    columns = ", ".join(f'"{c}"' for c in FACT_COLUMNS["logs_log"])
    with run.db.cursor() as cursor, cursor.copy(f"COPY logs_log ({columns}) FROM STDIN") as copy:
        for h in range(hours):
            lines: list[str] = []
            # Hours numbered below zero: their request ids differ from the data set's.
            renderer.logs(-1 - h, (start + timedelta(hours=h)).strftime("%Y-%m-%d %H:"), per_hour, lines, Counter())
            copy.write("".join(lines).encode())


class IngestDuringPurge:
    """--clients clients ingesting 100-record batches until the block ends."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.tally = Tally(run)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.ingest, args=(c,)) for c in range(run.args.clients)]

    def __enter__(self) -> Tally:
        for thread in self.threads:
            thread.start()
        return self.tally

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def ingest(self, c: int) -> None:
        feed = Feed(self.run.pop, f"{self.run.run_id}-purge-{c}")
        client = self.run.client()
        while not self.stop.is_set():
            self.tally.post(client, feed.batch(PURGE_BATCH_SIZE))


def purge_under_ingest(run: Run) -> None:
    """Old rows in, then DELETE /api/log/ of everything before them while clients ingest."""
    start = (datetime.now(UTC) - timedelta(days=OLD_DATA_DAYS)).replace(minute=0, second=0, microsecond=0)
    hours = 48
    cutoff = start + timedelta(hours=hours)
    run.db.execute("DELETE FROM logs_log WHERE created_at < %s", [cutoff])  # what an interrupted run left
    insert_old_rows(run, run.args.purge_rows, start, hours)
    waiting = run.db.execute("SELECT count(*) FROM logs_log WHERE created_at < %s", [cutoff]).fetchone()[0]
    with IngestDuringPurge(run) as ingest:
        time.sleep(1)  # ingest under way before the purge starts
        began = time.perf_counter()
        status, payload = run.client().request("DELETE", f"/api/log/?target_timestamp={unix(cutoff)}",
                                               run.callers["admin"])
        elapsed = time.perf_counter() - began
    deleted = json.loads(payload).get("data", 0) if status == 200 else 0
    errors, outcome = ingest.outcome()
    result = Result(
        "purge under ingest", "purge", max_ms=round(max(ingest.samples, default=0), 1),
        rows_per_s=round(deleted / elapsed), errors=errors + int(deleted != waiting),
        note=f"deleted {deleted:,} of {waiting:,} in {elapsed:.1f}s; max = slowest of {len(ingest.samples):,} "
             f"ingest requests meanwhile; {outcome}",
    )
    run.report.add(result)


# --- SSE ---------------------------------------------------------------------------------------


def first_event_ms(sock: socket.socket, began: float) -> float | None:
    """Milliseconds from BEGAN until the stream's first event, None when it refused or ended."""
    data = b""
    try:
        while b"event:" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
    except OSError:
        return None
    return (time.perf_counter() - began) * 1000 if data.startswith(b"HTTP/1.1 200") else None


def sse_fan_out(run: Run) -> None:
    """--streams event streams opened at once; the time until each has its first event."""
    streams = run.args.streams
    began = time.perf_counter()
    socks = []
    for _ in range(streams):
        sock = socket.create_connection((HOST, run.server.port), timeout=60)
        sock.sendall(f"GET /api/system/events?token={SERVICE_KEY} HTTP/1.1\r\nHost: localhost\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        socks.append(sock)
    firsts = [first_event_ms(sock, began) for sock in socks]
    rss = run.server.rss_mb()
    for sock in socks:
        sock.close()
    arrived = [ms for ms in firsts if ms is not None]
    result = latency(f"SSE fan-out {streams} streams", arrived, streams - len(arrived),
                     note=f"time to first event; server RSS per worker with the streams open: {rss} MB")
    result.rss_mb = max(rss)
    run.report.add(result)


# --- the run -----------------------------------------------------------------------------------


def issue_token(username: str, *, admin: bool = False) -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("issue_token", username, *(["--admin"] if admin else []), "--name", "bench", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


STAFF_USERNAME = "bench-staff"


def staff_session(port: int) -> dict[str, str]:
    """Headers of a signed-in staff member of the admin: an account with a throwaway
    password, signed in through the admin's own login form."""
    import re
    import secrets

    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(24)
    staff, _ = get_user_model().objects.get_or_create(username=STAFF_USERNAME, defaults={"is_staff": True})
    staff.is_staff = True
    staff.set_password(password)
    staff.save()
    conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT)
    conn.request("GET", "/admin/login/", headers={"Host": "localhost"})
    page = conn.getresponse()
    cookies = dict(c.split(";", 1)[0].split("=", 1) for c in page.headers.get_all("Set-Cookie") or [])
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.read()).group(1).decode()
    form = f"csrfmiddlewaretoken={token}&username={STAFF_USERNAME}&password={password}&next=/admin/"
    conn.request("POST", "/admin/login/", body=form, headers={
        "Host": "localhost", "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"csrftoken={cookies['csrftoken']}", "Referer": "http://localhost/admin/login/",
    })
    answer = conn.getresponse()
    answer.read()
    cookies |= dict(c.split(";", 1)[0].split("=", 1) for c in answer.headers.get_all("Set-Cookie") or [])
    if answer.status != 302 or "sessionid" not in cookies:
        raise RuntimeError(f"the staff sign-in failed ({answer.status})")
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def subjects(pop: Population, db: Connection, now: datetime) -> Subjects:
    """The busiest account, model, tool and group chat, and the most shared key name."""
    account = pop.accounts[0]
    chat = pop.chats[pop.busiest_group()]
    logs = db.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'logs_log'").fetchone()[0]
    return Subjects(
        now=now, username=account.username,
        user_id=db.execute("SELECT id FROM auth_user WHERE username = %s", [account.username]).fetchone()[0],
        model=pop.models[0], token_name=world.KEY_NAMES[0], channel=pop.home_channel[0] + 1, group="vip",
        chat_id=chat.chat_id,
        chat_pk=db.execute("SELECT id FROM messaging_chat WHERE chat_id = %s", [chat.chat_id]).fetchone()[0],
        tool_id=world.TOOLS[0].tool_id, tool_name=world.TOOLS[0].name, relay_key=pop.keys[account.keys[0]].raw,
        deep_page=max(1, min(5000, logs // 40)),
    )


def machine(db: Connection) -> str:
    import psutil

    version = db.execute("SHOW server_version").fetchone()[0].split()[0]
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu_model()}), {memory:.0f} GiB, PostgreSQL {version}"


def cpu_model() -> str:
    """The processor's name and clock, as Linux reports it (machines of one size differ)."""
    import platform

    try:
        with open("/proc/cpuinfo") as info:
            fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in info if ":" in line)}
    except OSError:
        return platform.processor() or platform.machine()
    name = " ".join(fields.get("model name", platform.machine()).split())
    try:
        return f"{name}, {float(fields['cpu MHz']) / 1000:.1f} GHz"
    except (KeyError, ValueError):
        return name


def measure(dataset: DataSet, args: argparse.Namespace, out_dir: Path) -> Report:
    import psycopg

    with psycopg.connect(dataset.url, autocommit=True) as db:
        db.execute("SET TIME ZONE 'UTC'")  # the server's default STATS_TIME_ZONE: days are UTC days
        pop = Population(dataset.seed)
        report = Report(dataset.scale, machine(db), datetime.now(UTC).isoformat(timespec="seconds"),
                        settings={k: v for k, v in vars(args).items() if k != "out"},
                        generation=generation_report(dataset))
        callers = {
            "admin": {"Authorization": f"Bearer {issue_token('bench-admin', admin=True)}"},
            "user": {"Authorization": f"Bearer {issue_token(pop.accounts[0].username)}"},
            "service": {"X-API-Key": SERVICE_KEY},
            "public": {},
        }
        server = Server(dataset, args.workers, out_dir / f"server-{dataset.scale}.log")
        try:
            callers["staff"] = staff_session(server.port)
            run_all(Run(server, report, pop, callers, db, args, f"bench-{int(time.time())}"))
        finally:
            server.stop()
    return report


def forget_ingested(run: Run) -> None:
    """Take out what runs have ingested (every fact after the data set was generated) and
    rebuild the rollups from then on, so every run measures the data set as generated:
    a run ingests some 90,000 calls stamped now, which would otherwise crowd the last
    hours of the next run's windows."""
    from django.core.management import call_command

    generated = run.db.execute("SELECT generated_at FROM bench_meta WHERE complete").fetchone()[0]
    deleted = run.db.execute("DELETE FROM logs_log WHERE created_at >= %s", [generated]).rowcount
    if deleted:
        call_command("rollups", "rebuild", "--since", generated.isoformat(), "--kind", "llm", "--kind", "events",
                     stdout=io.StringIO())
    # As autovacuum would have done on a live server: no dead rows, fresh statistics.
    run.db.execute("VACUUM ANALYZE")


CALIBRATION = ("machine: Python, fixed work", "machine: PostgreSQL, fixed work")


def calibrate(run: Run) -> None:
    """How fast the machine is during this run, by two fixed pieces of work: Python
    alone, and PostgreSQL alone. Machines of one size differ, and one machine differs
    from hour to hour; runs compare by these (and by the raw scans of the same run)."""

    def python_work() -> bool:
        return sum(i * i for i in range(1_000_000)) > 0

    def sql_work() -> bool:
        return run.db.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()[0] == 3_000_000

    for name, work in zip(CALIBRATION, (python_work, sql_work)):
        samples, errors = timed(work, 7, 1)
        run.report.add(latency(name, samples, errors, note="the same work in every run: the machine's speed"))


def run_all(run: Run) -> None:
    forget_ingested(run)
    print(text_header(), flush=True)
    calibrate(run)
    run_reads(run, subjects(run.pop, run.db, datetime.now(UTC)))
    ingest_batches(run)
    ingest_singles(run)
    if run.args.purge_rows:
        purge_under_ingest(run)
    if run.args.streams:
        sse_fan_out(run)
    rss = run.server.rss_mb()
    run.report.server_rss_mb = rss
    run.report.add(Result("server RSS per worker at the end", "memory", rss_mb=max(rss), note=f"{rss} MB"))
    forget_ingested(run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="statsite benchmark")
    dataset_arguments(parser)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Server worker processes.")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 30)),
                        help="Timed requests per read measurement.")
    parser.add_argument("--baseline-repeat", type=int, default=3, help="Timed raw scans per baseline.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent ingest clients.")
    parser.add_argument("--ingest-batches", type=int, default=15, help="1000-record batches per client.")
    parser.add_argument("--singles", type=int, default=200, help="Single-record requests timed.")
    parser.add_argument("--purge-rows", type=int, default=1_000_000, help="Old rows purged under ingest (0: skip).")
    parser.add_argument("--streams", type=int, default=200, help="SSE streams opened at once (0: skip).")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench", help="Where results are written.")
    args = parser.parse_args(argv)
    dataset = dataset_from(parser, args)
    args.out.mkdir(parents=True, exist_ok=True)
    build(dataset)
    report = measure(dataset, args, args.out)
    write(report, args.out)
    print(f"\n{report.summary()}\nWritten: {args.out}/results-{dataset.scale}.json and .md", flush=True)


if __name__ == "__main__":
    main()
