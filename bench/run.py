"""The benchmark: statsite at scale, measured through HTTP, beside a raw-scan baseline.

    make bench                      # SCALE=1000000 by default
    make bench SCALE=10000000

1. Generates (or reuses) the PostgreSQL data set of that scale (bench/generate.py).
2. Starts the production server as a user would: uvicorn, one worker per core.
3. Times every read endpoint of the API documents (each stats endpoint over 1, 7
   and 30 days and a filtered case, the log list with and without each filter,
   a deep page, the public token lookup, search), and for each stats answer the
   same numbers computed by one SQL aggregate over the raw fact table — the way
   gateway log systems answer them — so the table shows ours, the baseline and
   the ratio.
4. Measures ingest (1000-record batches from concurrent clients, and single
   records), a purge of 1M rows while ingest runs, and SSE fan-out.
5. Prints a table and writes var/bench/results-<scale>.json and .md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.generate import ROOT, build, database_url

HOST = "127.0.0.1"
REPEAT = int(os.environ.get("BENCH_REPEAT", 30))
BENCH_SERVICE_KEY = "bench-service-key-0123456789abcdef0123456789abcdef"


@dataclass
class Result:
    name: str
    p50_ms: float | None = None
    p95_ms: float | None = None
    max_ms: float | None = None
    baseline_p50_ms: float | None = None
    ratio: float | None = None
    rows_per_s: float | None = None
    note: str = ""
    errors: int = 0


@dataclass
class Report:
    scale: int
    machine: str
    started_at: str
    results: list[Result] = field(default_factory=list)
    server_rss_mb: list[float] = field(default_factory=list)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=120)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body=None):
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Host": "localhost", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=all_headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, payload
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def timed(fn, repeat: int = REPEAT, warmup: int = 2) -> tuple[list[float], int]:
    for _ in range(warmup):
        fn()
    samples, errors = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        ok = fn()
        samples.append((time.perf_counter() - began) * 1000)
        errors += 0 if ok else 1
    return samples, errors


class Server:
    """The production server, as `make run` would start it, against the bench database."""

    def __init__(self, scale: int, workers: int) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(scale),
            "STATSITE_API_KEYS": BENCH_SERVICE_KEY,
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "LOG_SEARCH_THROTTLE_RATE": "1000000/min",
            "LOG_TOKEN_THROTTLE_RATE": "1000000/min",
            "LOG_LEVEL": "WARNING",
        }
        self.log = open(ROOT / "var" / "bench" / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "statsite.asgi:application", "--host", HOST, "--port", str(self.port),
             "--workers", str(workers), "--lifespan", "off", "--no-access-log"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _ = Client(self.port).request("GET", "/api/schema/")
                if status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the server did not start; see var/bench/server.log")

    def manage(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, check=True)
        return out.stdout

    def rss_mb(self) -> list[float]:
        import psutil

        parent = psutil.Process(self.proc.pid)
        workers = parent.children(recursive=True) or [parent]
        return [round(p.memory_info().rss / 2**20, 1) for p in workers]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- what is measured ----------------------------------------------------------------------


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def stats_cases(now: datetime, admin: dict, user: dict, service: dict, username: str, user_id: int):
    """(name, method, path, headers, body, baseline SQL and params or None)."""
    cases = []
    llm = "(type = 2 OR (type = 4 AND model_name <> ''))"
    for days in (1, 7, 30):
        start = now - timedelta(days=days)
        window = [start, now]
        cases += [
            (f"GET /api/data/ {days}d", "GET",
             f"/api/data/?start_timestamp={unix(start)}&end_timestamp={unix(now)}", admin, None,
             (f"SELECT model_name, date_trunc('hour', created_at), count(*), sum(quota) FILTER (WHERE type = 2), "
              f"sum(prompt_tokens + completion_tokens) FROM logs_log WHERE created_at >= %s AND created_at < %s "
              f"AND {llm} GROUP BY 1, 2", window)),
            (f"GET /llm/stats {days}d by model", "GET",
             f"/llm/stats?period_type=custom&start_time_str={start.isoformat()}&end_time_str={now.isoformat()}"
             .replace("+", "%2B"), service, None,
             (f"SELECT model_name, count(*), sum(cost), sum(prompt_tokens), sum(completion_tokens) FROM logs_log "
              f"WHERE created_at >= %s AND created_at < %s AND {llm} GROUP BY 1", window)),
            (f"POST /agent/stats {days}d", "POST", "/agent/stats", user,
             {"start_date": start.date().isoformat(), "end_date": now.date().isoformat()},
             ("SELECT tool_id, tool_name, date_trunc('day', created_at), count(*), count(*) FILTER (WHERE success), "
              "sum(cost) FROM usage_toolcall WHERE user_id = %s AND created_at >= %s AND created_at < %s "
              "GROUP BY 1, 2, 3", [user_id, start, now])),
            (f"GET /messages/recent {days}d", "GET", f"/messages/recent?days={days}", service, None,
             ("SELECT sent_by_bot, count(*) FROM messaging_message WHERE created_at >= %s AND created_at < %s "
              "GROUP BY 1", window)),
        ]
    for period, days in (("day", 1), ("week", 7), ("month", 30)):
        window = [now - timedelta(days=days), now]
        cases += [
            (f"GET /api/stats/models {period}", "GET", f"/api/stats/models?period={period}", service, None,
             (f"SELECT model_name, count(*), sum(prompt_tokens + completion_tokens), avg(latency_ms), "
              f"count(*) FILTER (WHERE NOT success), percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) "
              f"FROM logs_log WHERE created_at >= %s AND created_at < %s AND {llm} GROUP BY 1", window)),
            (f"GET /api/stats/channels {period}", "GET", f"/api/stats/channels?period={period}", service, None,
             (f"SELECT channel_id, count(*), count(*) FILTER (WHERE NOT success), avg(latency_ms), max(created_at) "
              f"FROM logs_log WHERE created_at >= %s AND created_at < %s AND {llm} GROUP BY 1", window)),
            (f"GET /api/stats/tools {period}", "GET", f"/api/stats/tools?period={period}", service, None,
             ("SELECT tool_name, count(*), avg(duration_ms), avg(success::int) FROM usage_toolcall "
              "WHERE created_at >= %s AND created_at < %s GROUP BY 1", window)),
            (f"GET /api/stats {period}", "GET", f"/api/stats?period={period}", service, None,
             ("SELECT count(*), count(*) FILTER (WHERE sent_by_bot), count(DISTINCT sender_id) "
              "FROM messaging_message WHERE created_at >= %s AND created_at < %s", window)),
        ]
    month = [now - timedelta(days=30), now]
    cases += [
        ("GET /llm/stats 30d by user", "GET", "/llm/stats?period_type=last_30_days&group_by=user", service, None,
         (f"SELECT user_id, count(*), sum(cost), sum(prompt_tokens), sum(completion_tokens) FROM logs_log "
          f"WHERE created_at >= %s AND created_at < %s AND {llm} GROUP BY 1", month)),
        ("GET /api/data/ 30d one user", "GET",
         f"/api/data/?start_timestamp={unix(month[0])}&end_timestamp={unix(now)}&username={username}", admin, None,
         (f"SELECT model_name, date_trunc('hour', created_at), count(*), sum(quota) FILTER (WHERE type = 2), "
          f"sum(prompt_tokens + completion_tokens) FROM logs_log WHERE user_id = %s AND created_at >= %s "
          f"AND created_at < %s AND {llm} GROUP BY 1, 2", [user_id, *month])),
        ("GET /api/data/self 30d", "GET",
         f"/api/data/self?start_timestamp={unix(month[0])}&end_timestamp={unix(now)}", user, None,
         (f"SELECT model_name, date_trunc('hour', created_at), count(*), sum(quota) FILTER (WHERE type = 2), "
          f"sum(prompt_tokens + completion_tokens) FROM logs_log WHERE user_id = %s AND created_at >= %s "
          f"AND created_at < %s AND {llm} GROUP BY 1, 2", [user_id, *month])),
        ("GET /api/stats/users", "GET", "/api/stats/users?limit=20&sort=messages", service, None,
         ("SELECT sender_id, count(*), max(created_at) FROM messaging_message WHERE NOT sent_by_bot "
          "GROUP BY 1 ORDER BY 2 DESC LIMIT 20", [])),
        ("GET /api/stats/groups", "GET", "/api/stats/groups?limit=20&sort=messages", service, None,
         ("SELECT chat_id, count(*), count(DISTINCT sender_id), max(created_at) FROM messaging_message "
          "GROUP BY 1 ORDER BY 2 DESC LIMIT 20", [])),
        ("GET /messages/stats_by_chat 7d", "GET",
         "/messages/stats_by_chat?days=7&source=user&group_by_user=true&format=true", service, None,
         ("SELECT chat_id, sender_id, count(*) FROM messaging_message WHERE NOT sent_by_bot AND created_at >= %s "
          "AND created_at < %s GROUP BY 1, 2", [now - timedelta(days=7), now])),
        ("GET /api/log/stat 30d", "GET",
         f"/api/log/stat?type=2&start_timestamp={unix(month[0])}&end_timestamp={unix(now)}", admin, None,
         ("SELECT sum(quota) FROM logs_log WHERE type = 2 AND created_at >= %s AND created_at <= %s", month)),
    ]
    return cases


def list_cases(admin: dict, public_key: str, username: str, model: str):
    return [
        ("GET /api/log/ page 1", f"/api/log/?p=1&page_size=20", admin),
        ("GET /api/log/ type=2", "/api/log/?p=1&type=2", admin),
        ("GET /api/log/ username", f"/api/log/?p=1&username={username}", admin),
        ("GET /api/log/ token_name", "/api/log/?p=1&token_name=key-7", admin),
        ("GET /api/log/ model_name", f"/api/log/?p=1&model_name={model}", admin),
        ("GET /api/log/ channel", "/api/log/?p=1&channel=3", admin),
        ("GET /api/log/ group", "/api/log/?p=1&group=vip", admin),
        ("GET /api/log/ deep page 5000", "/api/log/?p=5000&page_size=20", admin),
        ("GET /api/log/token", f"/api/log/token?key={urllib.parse.quote(public_key)}", {}),
        ("GET /api/log/search keyword", "/api/log/search?keyword=rate%20limit", admin),
    ]


def run_reads(server: Server, report: Report, tokens: dict) -> None:
    import psycopg

    client = Client(server.port)
    now = datetime.now(UTC)
    baseline_conn = psycopg.connect(database_url(report.scale))
    for name, method, path, headers, body, baseline in stats_cases(now, tokens["admin"], tokens["user"],
                                                                   tokens["service"], tokens["username"],
                                                                   tokens["user_id"]):
        samples, errors = timed(lambda: client.request(method, path, headers, body)[0] == 200)
        result = Result(name, round(statistics.median(samples), 1), round(percentile(samples, 0.95), 1),
                        round(max(samples), 1), errors=errors)
        if baseline:
            sql, params = baseline
            base, _ = timed(lambda: bool(baseline_conn.execute(sql, params).fetchall()) or True, repeat=5, warmup=1)
            result.baseline_p50_ms = round(statistics.median(base), 1)
            result.ratio = round(result.baseline_p50_ms / max(result.p50_ms, 0.01), 1)
        report.results.append(result)
        print(format_row(result), flush=True)
    for name, path, headers in list_cases(tokens["admin"], tokens["relay_key"], tokens["username"], "model-00"):
        samples, errors = timed(lambda: client.request("GET", path, headers)[0] == 200)
        result = Result(name, round(statistics.median(samples), 1), round(percentile(samples, 0.95), 1),
                        round(max(samples), 1), errors=errors)
        report.results.append(result)
        print(format_row(result), flush=True)
    baseline_conn.close()


def llm_batch(prefix: str, size: int, now: datetime) -> list[dict]:
    return [
        {"request_id": f"{prefix}-{i}", "username": f"user{i % 1000:04d}", "model_name": f"model-{i % 50:02d}",
         "token_key": f"sk-ingest-{i % 500}", "token_name": "ingest", "channel_id": 1 + i % 20,
         "prompt_tokens": 100 + i % 900, "completion_tokens": 10 + i % 300, "latency_ms": 500 + i % 4000,
         "created_at": now.isoformat(), "group": "default", "request_type": "chat.reply"}
        for i in range(size)
    ]


def run_ingest(server: Server, report: Report, *, clients: int = 4, batches: int = 10) -> list[str]:
    """Batches of 1000 from concurrent clients, then single-record posts; returns the acknowledged ids."""
    headers = {"X-API-Key": BENCH_SERVICE_KEY}
    acknowledged: list[str] = []
    lock = threading.Lock()
    stamp = int(time.time())

    def send(c: int) -> tuple[int, int]:
        client = Client(server.port)
        ok = bad = 0
        for b in range(batches):
            batch = llm_batch(f"bench-{stamp}-{c}-{b}", 1000, datetime.now(UTC))
            status, _ = client.request("POST", "/api/ingest/llm-calls", headers, batch)
            if status == 201:
                ok += 1000
                with lock:
                    acknowledged.extend(r["request_id"] for r in batch)
            else:
                bad += 1
        return ok, bad

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(send, range(clients)))
    elapsed = time.perf_counter() - began
    rows = sum(o for o, _ in outcomes)
    result = Result("ingest 1000-record batches", rows_per_s=round(rows / elapsed), errors=sum(b for _, b in outcomes),
                    note=f"{clients} clients x {batches} batches, rollups included")
    report.results.append(result)
    print(format_row(result), flush=True)

    client = Client(server.port)
    singles = iter(range(10**9))
    samples, errors = timed(
        lambda: client.request("POST", "/api/ingest/llm-calls", headers,
                               llm_batch(f"single-{stamp}-{next(singles)}", 1, datetime.now(UTC))[0])[0] == 201,
        repeat=200, warmup=5,
    )
    result = Result("ingest single record", round(statistics.median(samples), 1), round(percentile(samples, 0.95), 1),
                    round(max(samples), 1), errors=errors)
    report.results.append(result)
    print(format_row(result), flush=True)
    return acknowledged


def run_purge_under_ingest(server: Server, report: Report, tokens: dict, rows: int) -> None:
    """Copy ROWS old rows in (older than the data set), then purge them through the API while
    four clients keep ingesting; report purge speed, the slowest ingest request and losses."""
    import psycopg

    old = datetime.now(UTC) - timedelta(days=400)
    with psycopg.connect(database_url(report.scale)) as conn, conn.cursor() as cursor:
        with cursor.copy('COPY logs_log (username, created_at, type, content, token_name, model_name, quota, '
                         'prompt_tokens, completion_tokens, use_time, is_stream, "group", other, module, '
                         'request_type, cost, success, level, chat_id) FROM STDIN') as copy:
            for i in range(rows):
                copy.write_row(("", old + timedelta(seconds=i % 86400), 5, "old", "", "", 0, 0, 0, 0, False, "",
                                "{}", "", "", 0, True, "info", ""))
    headers = {"X-API-Key": BENCH_SERVICE_KEY}
    admin = tokens["admin"]
    stop = threading.Event()
    slowest = [0.0]
    sent: list[str] = []
    failures = [0]
    stamp = int(time.time())

    def ingest() -> None:
        client = Client(server.port)
        n = 0
        while not stop.is_set():
            batch = llm_batch(f"during-purge-{stamp}-{threading.get_ident()}-{n}", 100, datetime.now(UTC))
            began = time.perf_counter()
            status, _ = client.request("POST", "/api/ingest/llm-calls", headers, batch)
            slowest[0] = max(slowest[0], time.perf_counter() - began)
            if status == 201:
                sent.extend(r["request_id"] for r in batch)
            else:
                failures[0] += 1
            n += 1

    threads = [threading.Thread(target=ingest) for _ in range(4)]
    for t in threads:
        t.start()
    client = Client(server.port)
    began = time.perf_counter()
    status, body = client.request("DELETE", f"/api/log/?target_timestamp={unix(old + timedelta(days=2))}", admin)
    elapsed = time.perf_counter() - began
    stop.set()
    for t in threads:
        t.join()
    deleted = json.loads(body).get("data", 0) if status == 200 else 0
    with psycopg.connect(database_url(report.scale)) as conn:
        found = conn.execute("SELECT count(*) FROM logs_log WHERE request_id = ANY(%s)", [sent]).fetchone()[0]
    result = Result("purge 1M rows under ingest", rows_per_s=round(deleted / elapsed), max_ms=round(slowest[0] * 1000),
                    errors=failures[0] + (len(sent) - found),
                    note=f"deleted {deleted:,} in {elapsed:.1f}s; ingest acknowledged {len(sent):,}, found {found:,}")
    report.results.append(result)
    print(format_row(result), flush=True)


def run_sse(server: Server, report: Report, streams: int = 200) -> None:
    """Open STREAMS event streams at once; time until every one has its first event."""
    token = BENCH_SERVICE_KEY
    socks = []
    began = time.perf_counter()
    first_event = []
    for _ in range(streams):
        sock = socket.create_connection((HOST, server.port), timeout=30)
        sock.sendall(f"GET /api/system/events?token={token} HTTP/1.1\r\nHost: localhost\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        socks.append(sock)
    errors = 0
    for sock in socks:
        data = b""
        try:
            while b"event:" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        if b"event:" in data and b" 200 " in data.split(b"\r\n", 1)[0] + b" ":
            first_event.append((time.perf_counter() - began) * 1000)
        else:
            errors += 1
    rss = server.rss_mb()
    for sock in socks:
        sock.close()
    result = Result(f"SSE fan-out {streams} streams", p50_ms=round(statistics.median(first_event), 1) if first_event else None,
                    max_ms=round(max(first_event), 1) if first_event else None, errors=errors,
                    note=f"time to first event; server RSS with streams open {rss} MB")
    report.results.append(result)
    print(format_row(result), flush=True)


def format_row(r: Result) -> str:
    def cell(v):
        return "" if v is None else f"{v:,}" if isinstance(v, (int, float)) else str(v)

    return (f"{r.name:<38} {cell(r.p50_ms):>9} {cell(r.p95_ms):>9} {cell(r.max_ms):>9} "
            f"{cell(r.baseline_p50_ms):>11} {cell(r.ratio):>7} {cell(r.rows_per_s):>10} {r.errors:>4} {r.note}")


def markdown(report: Report) -> str:
    lines = [f"### Scale {report.scale:,} LLM calls — {report.machine}, {report.started_at}", "",
             "| measurement | p50 ms | p95 ms | max ms | raw-scan p50 ms | ratio | rows/s | errors | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report.results:
        cells = [r.name, r.p50_ms, r.p95_ms, r.max_ms, r.baseline_p50_ms, r.ratio, r.rows_per_s, r.errors, r.note]
        lines.append("| " + " | ".join("" if c is None else f"{c:,}" if isinstance(c, (int, float)) else str(c)
                                       for c in cells) + " |")
    lines += ["", f"Server RSS per worker at the end: {report.server_rss_mb} MB", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="statsite benchmark")
    parser.add_argument("--scale", type=int, default=int(os.environ.get("SCALE", 1_000_000)))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--purge-rows", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args(argv)

    out_dir = ROOT / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    build(args.scale, 90)
    import psutil

    machine = f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, PostgreSQL"
    report = Report(args.scale, machine, datetime.now(UTC).isoformat(timespec="seconds"))
    server = Server(args.scale, args.workers)
    try:
        admin = server.manage("issue_token", "bench-admin", "--admin").strip().splitlines()[-1]
        username = "user0000"
        user = server.manage("issue_token", username).strip().splitlines()[-1]
        import psycopg

        with psycopg.connect(database_url(args.scale)) as conn:
            user_id = conn.execute("SELECT id FROM auth_user WHERE username = %s", [username]).fetchone()[0]
        relay_key = json.loads((out_dir / f"keys-{args.scale}.json").read_text())[0]
        tokens = dict(
            admin={"Authorization": f"Bearer {admin}"}, user={"Authorization": f"Bearer {user}"},
            service={"X-API-Key": BENCH_SERVICE_KEY}, username=username, user_id=user_id, relay_key=relay_key,
        )
        print(f"{'measurement':<38} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'raw p50 ms':>11} {'ratio':>7} "
              f"{'rows/s':>10} {'err':>4}", flush=True)
        run_reads(server, report, tokens)
        run_ingest(server, report)
        if args.purge_rows:
            run_purge_under_ingest(server, report, tokens, args.purge_rows)
        if args.streams:
            run_sse(server, report, args.streams)
        report.server_rss_mb = server.rss_mb()
    finally:
        server.stop()
    (out_dir / f"results-{args.scale}.json").write_text(json.dumps(asdict(report), indent=2, default=str))
    (out_dir / f"results-{args.scale}.md").write_text(markdown(report))
    print(f"\nServer RSS per worker at the end: {report.server_rss_mb} MB")
    print(f"Written: var/bench/results-{args.scale}.json and .md")


if __name__ == "__main__":
    main()
