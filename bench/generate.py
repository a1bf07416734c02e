"""Fill a PostgreSQL database with a realistic statsite data set, fast.

    python -m bench.generate --scale 1000000 [--days 90] [--seed 42] [--database NAME] [--force]

Each scale gets its own database (`statsite_bench_<scale>`, or --database) on the
server of BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres). A data
set generated there before with the same scale, days, seed and generator version is
reused; anything else in that database is refused unless --force replaces it.

What is in it: SCALE LLM calls over DAYS days, tool calls (10% of the calls), chat
messages (50%) and logs of every other type (3%), drawn from the population that
bench/world.py describes (skewed accounts with favourite models and their own keys,
chats with members, a daily and weekly rhythm).

How it is loaded, in the order a live system would have written it:
- dimension rows (accounts, relay keys, channels, prices, people, chats) through the ORM;
- facts by COPY ... FREEZE, one stream per table in time order, rendered a few hours at
  a time by one worker process per core. Frozen rows are all-visible at once, as on a
  server whose autovacuum has caught up, so index-only scans work without a VACUUM;
- secondary indexes dropped before and built after, two at a time with a large
  maintenance_work_mem, then ANALYZE;
- rollups last, by `manage.py rollups rebuild`, the code that repairs them in production;
  their partial indexes (read-only covering indexes) dropped before and built after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from bench import world
from bench.world import Population

if TYPE_CHECKING:
    from psycopg import Connection

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# Bumped whenever the data a seed produces changes, so an older data set is not measured as this one.
GENERATOR_VERSION = 2
DEFAULT_DAYS = 90
DEFAULT_SEED = 42
BENCH_SECRET_KEY = "statsite-bench-only-secret-key-0123456789abcdef"
HOURS_PER_TASK = 6
INDEX_BUILDERS = 2
PROGRESS_SECONDS = 15

FACT_COLUMNS = {
    "logs_log": (
        "created_at", "user_id", "username", "type", "content", "token_id", "token_name", "model_name", "quota",
        "prompt_tokens", "completion_tokens", "use_time", "is_stream", "channel_id", "group", "ip", "other",
        "module", "request_type", "cost", "latency_ms", "success", "level", "chat_id", "request_id",
    ),
    "usage_toolcall": (
        "created_at", "tool_id", "tool_name", "user_id", "username", "chat_id", "args", "result", "success",
        "duration_ms", "cost", "request_id",
    ),
    "messaging_message": ("created_at", "chat_id", "sender_id", "sent_by_bot", "text_length", "text"),
}
# Index builds start with the biggest table's, so the two builders finish together.
BIGGEST_FIRST = ("logs_log", "messaging_message", "usage_toolcall")
# What a failed LLM call stores: ingest keeps the error as the content and in other.error.
LLM_ERRORS = ("upstream error: rate limit exceeded", "upstream timeout after 60s", "invalid request: context too long")
OTHER_CONTENT = {
    1: ("top-up by redemption code", "top-up by card payment"),
    3: ("quota adjusted by administrator", "group changed to vip", "key disabled by administrator"),
    4: ("database timeout while recording usage", "channel test failed: connection refused"),
    5: ("channel health check passed", "configuration reloaded", "scheduler tick", "cache warmed"),
}


def server_url() -> str:
    return os.environ.get("BENCH_PG_URL", DEFAULT_SERVER_URL)


@dataclass(frozen=True)
class DataSet:
    """Which data set, and the database that holds it."""

    scale: int
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    database: str = ""

    @property
    def name(self) -> str:
        return self.database or f"statsite_bench_{self.scale}"

    @property
    def url(self) -> str:
        return server_url().rsplit("/", 1)[0] + "/" + self.name

    def identity(self) -> dict[str, int]:
        return {"scale": self.scale, "days": self.days, "seed": self.seed, "version": GENERATOR_VERSION}


# --- the database ----------------------------------------------------------------------------


def stored_identity(dataset: DataSet) -> dict | None:
    """The identity of the complete data set in the database, None when there is none."""
    import psycopg

    with psycopg.connect(dataset.url) as conn:
        try:
            row = conn.execute("SELECT identity FROM bench_meta WHERE complete").fetchone()
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            return None  # nothing generated, or by a generator older than bench_meta.identity
    return row[0] if row else None


def generation_report(dataset: DataSet) -> dict:
    """How the data set was generated (row counts, rates, timings), for the benchmark's report."""
    import psycopg

    with psycopg.connect(dataset.url) as conn:
        row = conn.execute("SELECT report FROM bench_meta WHERE complete").fetchone()
    return row[0] if row else {}


def prepare(dataset: DataSet, *, force: bool) -> bool:
    """Make the data set's database usable: True when it must be filled, False to reuse it.
    A database holding anything else is never replaced without FORCE."""
    import psycopg

    with psycopg.connect(server_url(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dataset.name]).fetchone()
        if exists and not force:
            found = stored_identity(dataset)
            if found == dataset.identity():
                return False
            raise SystemExit(
                f"{dataset.name} does not hold the data set {dataset.identity()} (it holds "
                f"{found or 'no complete data set of this generator'}). To replace it, run "
                f"`python -m bench.generate` with the same options and --force."
            )
        if exists:
            conn.execute(f'DROP DATABASE "{dataset.name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dataset.name}"')
    return True


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    # A key of its own, so that no bench process writes the checkout's var/secret_key.
    os.environ.setdefault("SECRET_KEY", BENCH_SECRET_KEY)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


@dataclass(frozen=True)
class Ids:
    """Primary keys of the dimension rows by population index: what fact rows reference."""

    users: list[int]
    keys: list[int]
    people: list[int]
    chats: list[int]
    bot: int


def create_dimensions(pop: Population) -> Ids:
    """The few thousand dimension rows, through the ORM."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    from messaging.models import Chat, Participant
    from statsite import credentials
    from usage.models import Channel, ModelPrice, RelayKey

    unusable = make_password(None)
    User.objects.bulk_create([User(username=a.username, password=unusable) for a in pop.accounts])
    owners = dict(User.objects.values_list("username", "id"))
    RelayKey.objects.bulk_create([
        RelayKey(name=k.name, key_hash=credentials.digest(k.raw), prefix=credentials.relay_key_hint(k.raw),
                 owner_id=owners[pop.accounts[k.owner].username])
        for k in pop.keys
    ])
    Channel.objects.bulk_create([Channel(id=i + 1, name=name) for i, name in enumerate(pop.channels)])
    ModelPrice.objects.bulk_create([
        ModelPrice(model_name=m, input_per_million=Decimal(p_in), output_per_million=Decimal(p_out))
        for m, (p_in, p_out) in zip(pop.models, pop.model_prices)
    ])
    Participant.objects.bulk_create(
        [Participant(user_id=u, nickname=f"Person {i}") for i, u in enumerate(pop.people)]
        + [Participant(user_id=world.BOT_USER_ID, nickname=world.BOT_NICKNAME)]
    )
    Chat.objects.bulk_create([Chat(chat_id=c.chat_id, kind=c.kind, name=c.name) for c in pop.chats])
    return dimension_ids(pop)


def dimension_ids(pop: Population) -> Ids:
    """The primary keys of POP's dimension rows, found by their natural keys."""
    from django.contrib.auth.models import User

    from messaging.models import Chat, Participant
    from statsite import credentials
    from usage.models import RelayKey

    user_pk = dict(User.objects.filter(username__in=pop.people[:world.ACCOUNTS]).values_list("username", "id"))
    key_pk = dict(RelayKey.objects.values_list("key_hash", "id"))
    person_pk = dict(Participant.objects.values_list("user_id", "id"))
    chat_pk = dict(Chat.objects.values_list("chat_id", "id"))
    return Ids(
        users=[user_pk[a.username] for a in pop.accounts],
        keys=[key_pk[credentials.digest(k.raw)] for k in pop.keys],
        people=[person_pk[u] for u in pop.people],
        chats=[chat_pk[c.chat_id] for c in pop.chats],
        bot=person_pk[world.BOT_USER_ID],
    )


# --- rendering fact rows (in worker processes) -----------------------------------------------


@dataclass(frozen=True)
class Task:
    """Some consecutive hours of one table's rows."""

    table: str
    first_hour: int
    prefixes: tuple[str, ...]  # "YYYY-MM-DD HH:" of each hour (UTC)
    volumes: tuple[float, ...]  # expected LLM calls in each hour; other facts are shares of it


def plan(dataset: DataSet, start: datetime) -> dict[str, list[Task]]:
    hours = dataset.days * 24
    weights = world.hour_weights(start, hours)
    total = sum(weights)
    volumes = [dataset.scale * w / total for w in weights]
    prefixes = [(start + timedelta(hours=h)).strftime("%Y-%m-%d %H:") for h in range(hours)]
    return {
        table: [
            Task(table, h, tuple(prefixes[h:h + HOURS_PER_TASK]), tuple(volumes[h:h + HOURS_PER_TASK]))
            for h in range(0, hours, HOURS_PER_TASK)
        ]
        for table in FACT_COLUMNS
    }


def moments(rng: random.Random, prefix: str, n: int) -> list[str]:
    """N sorted moments of the hour PREFIX, as COPY text (microseconds, UTC)."""
    return [
        f"{prefix}{us // 60_000_000:02d}:{us // 1_000_000 % 60:02d}.{us % 1_000_000:06d}+00"
        for us in sorted(int(rng.random() * 3_600_000_000) for _ in range(n))
    ]


def cost_text(units: int) -> str:
    """A cost in 1e-8 currency units as the decimal PostgreSQL stores."""
    return f"{units // 100_000_000}.{units % 100_000_000:08d}"


class Renderer:
    """Renders the facts of some hours as COPY text (tab-separated, \\N for NULL).
    Every hour of every kind has its own seeded generator, so the rows do not depend on
    how the hours are shared among processes."""

    def __init__(self, pop: Population, ids: Ids) -> None:
        self.pop = pop
        self.user_pk = [str(i) for i in ids.users]
        self.key_pk = [str(i) for i in ids.keys]
        self.person_pk = [str(i) for i in ids.people]
        self.chat_pk = [str(i) for i in ids.chats]
        self.bot_pk = str(ids.bot)
        self.other_of_error = {e: json.dumps({"error": e}) for e in LLM_ERRORS}

    def render(self, task: Task) -> tuple[bytes, Counter]:
        draw = {"logs_log": self.logs, "usage_toolcall": self.tool_calls, "messaging_message": self.messages}
        lines: list[str] = []
        counts: Counter = Counter()
        for offset, (prefix, volume) in enumerate(zip(task.prefixes, task.volumes)):
            draw[task.table](task.first_hour + offset, prefix, volume, lines, counts)
        return "".join(lines).encode(), counts

    def rng(self, kind: str, hour: int) -> random.Random:
        return random.Random(f"{self.pop.seed}:{kind}:{hour}")

    def logs(self, hour: int, prefix: str, volume: float, out: list[str], counts: Counter) -> None:
        calls = self.llm_calls(hour, prefix, volume)
        others = self.other_logs(hour, prefix, volume * world.OTHER_LOG_SHARE)
        counts["llm_calls"] += len(calls)
        counts["other_logs"] += len(others)
        rows = calls + others
        rows.sort()  # the time comes first: both kinds in time order, as they were written
        out.extend(rows)

    def llm_calls(self, hour: int, prefix: str, volume: float) -> list[str]:
        rng = self.rng("llm", hour)
        pop = self.pop
        rows = []
        for i, at in enumerate(moments(rng, prefix, int(volume + rng.random()))):
            c = pop.llm_call(rng)
            account = pop.accounts[c.account]
            key = pop.keys[c.key]
            units = pop.cost_units(c)
            error = "" if c.ok else LLM_ERRORS[int(rng.random() * len(LLM_ERRORS))]
            chat = "" if c.chat is None else pop.chats[c.chat].chat_id
            rows.append(
                f"{at}\t{self.user_pk[c.account]}\t{account.username}\t{2 if c.ok else 4}\t{error}\t"
                f"{self.key_pk[c.key]}\t{key.name}\t{pop.models[c.model]}\t{units // 200 if c.ok else 0}\t"
                f"{c.prompt}\t{c.completion}\t{round(c.latency_ms / 1000)}\t{'t' if c.stream else 'f'}\t"
                f"{c.channel + 1}\t{account.group}\t{account.ip}\t{self.other_of_error[error] if error else '{}'}\t"
                f"{c.module}\t{c.request_type}\t{cost_text(units)}\t{c.latency_ms}\t{'t' if c.ok else 'f'}\t"
                f"{'info' if c.ok else 'error'}\t{chat}\tgen-{hour:05d}-{i:06d}\n"
            )
        return rows

    def other_logs(self, hour: int, prefix: str, volume: float) -> list[str]:
        rng = self.rng("other", hour)
        rows = []
        for at in moments(rng, prefix, int(volume + rng.random())):
            o = self.pop.other_log(rng)
            contents = OTHER_CONTENT[o.kind]
            content = contents[int(rng.random() * len(contents))]
            user_pk, username = ("\\N", "") if o.account is None else (
                self.user_pk[o.account], self.pop.accounts[o.account].username
            )
            other = '{"stack": "Traceback (most recent call last): ..."}' if o.kind == 4 else "{}"
            rows.append(
                f"{at}\t{user_pk}\t{username}\t{o.kind}\t{content}\t\\N\t\t\t{o.quota}\t0\t0\t0\tf\t\\N\t\t\\N\t"
                f"{other}\t\t\t0.00000000\t\\N\t{'f' if o.kind == 4 else 't'}\t{o.level}\t\t\\N\n"
            )
        return rows

    def tool_calls(self, hour: int, prefix: str, volume: float, out: list[str], counts: Counter) -> None:
        rng = self.rng("tool", hour)
        pop = self.pop
        start = len(out)
        for i, at in enumerate(moments(rng, prefix, int(volume * world.TOOL_CALL_SHARE + rng.random()))):
            t = pop.tool_use(rng)
            tool = world.TOOLS[t.tool]
            chat = "" if t.chat is None else pop.chats[t.chat].chat_id
            result = '{"ok": true}' if t.ok else '{"error": "tool failed"}'
            out.append(
                f"{at}\t{tool.tool_id}\t{tool.name}\t{self.user_pk[t.account]}\t{pop.accounts[t.account].username}\t"
                f"{chat}\t{tool.args}\t{result}\t{'t' if t.ok else 'f'}\t{t.duration_ms}\t"
                f"{cost_text(tool.cost_units if t.ok else 0)}\tgen-tool-{hour:05d}-{i:06d}\n"
            )
        counts["tool_calls"] += len(out) - start

    def messages(self, hour: int, prefix: str, volume: float, out: list[str], counts: Counter) -> None:
        rng = self.rng("message", hour)
        start = len(out)
        for at in moments(rng, prefix, int(volume * world.MESSAGE_SHARE + rng.random())):
            m = self.pop.message(rng)
            sender, by_bot = (self.bot_pk, "t") if m.sender is None else (self.person_pk[m.sender], "f")
            out.append(f"{at}\t{self.chat_pk[m.chat]}\t{sender}\t{by_bot}\t{m.text_length}\t\n")
        counts["messages"] += len(out) - start


_renderer: Renderer | None = None


def start_worker(seed: int, ids: Ids) -> None:
    global _renderer
    _renderer = Renderer(Population(seed), ids)


def render(task: Task) -> tuple[bytes, Counter]:
    assert _renderer is not None, "start_worker runs first"
    return _renderer.render(task)


# --- loading ---------------------------------------------------------------------------------


def in_order(pool: ProcessPoolExecutor, fn: Callable, items: Iterable, window: int) -> Iterator:
    """pool.map in order, with at most WINDOW results waiting, so memory stays bounded
    when the database consumes more slowly than the workers render."""
    pending: deque[Future] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class Progress:
    """Prints a table's rows and rate now and then, and at the end."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.began = self.last = time.monotonic()
        self.rows = 0

    def add(self, rows: int) -> None:
        self.rows += rows
        if time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.last = time.monotonic()
            self.print()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.began

    def print(self) -> None:
        rate = self.rows / max(self.seconds, 1e-9)
        print(f"  {self.label}: {self.rows:,} rows in {self.seconds:.0f}s ({rate:,.0f} rows/s)", flush=True)


def drop_secondary_indexes(
    conn: Connection, tables: Iterable[str], *, partial_only: bool = False
) -> list[tuple[str, str]]:
    """Drop the plain (non-unique, non-primary) indexes of TABLES (only the partial ones,
    with PARTIAL_ONLY); return (table, definition) to rebuild them."""
    found = conn.execute(
        "SELECT t.relname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = ANY(%s) AND NOT i.indisunique "
        "AND NOT i.indisprimary AND (i.indpred IS NOT NULL OR NOT %s)",
        [list(tables), partial_only],
    ).fetchall()
    for _, name, _ in found:
        conn.execute(f"DROP INDEX {name}")
    return [(table, definition) for table, _, definition in found]


def copy_table(
    conn: Connection, pool: ProcessPoolExecutor, table: str, tasks: list[Task], workers: int
) -> tuple[Counter, float]:
    """One table's rows in time order, frozen: TRUNCATE and COPY FREEZE in one transaction.
    Returns the rows by kind and the seconds taken."""
    columns = ", ".join(f'"{c}"' for c in FACT_COLUMNS[table])
    counts: Counter = Counter()
    progress = Progress(table)
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(f'TRUNCATE "{table}"')
        with cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN (FREEZE)') as copy:
            for chunk, chunk_counts in in_order(pool, render, tasks, window=2 * workers + 2):
                copy.write(chunk)
                counts.update(chunk_counts)
                progress.add(sum(chunk_counts.values()))
    progress.print()
    return counts, round(progress.seconds, 1)


def build_index(url: str, definition: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")  # the builders already use every core
        conn.execute(definition)


def build_indexes(url: str, definitions: list[str]) -> None:
    """Build DEFINITIONS, INDEX_BUILDERS at a time, in the order given."""
    with ThreadPoolExecutor(INDEX_BUILDERS) as builders:
        list(builders.map(lambda d: build_index(url, d), definitions))


def load_facts(dataset: DataSet, ids: Ids, start: datetime, workers: int) -> dict:
    """COPY every fact, then rebuild the indexes and ANALYZE. Returns the rows by kind, the
    rows, seconds and rate of each table's COPY, and the seconds of the other steps."""
    import psycopg

    tasks = plan(dataset, start)
    rows: Counter = Counter()
    tables: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    with psycopg.connect(dataset.url, autocommit=True) as conn:
        # A bulk load's usual shape: foreign-key triggers off for this session (every id
        # written comes from the dimension rows just created), secondary indexes built
        # once at the end instead of row by row.
        conn.execute("SET session_replication_role = replica")
        dropped = drop_secondary_indexes(conn, FACT_COLUMNS)
        context = get_context("spawn")  # a fresh interpreter: no inherited database connection
        with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                                 initargs=(dataset.seed, ids)) as pool:
            for table, table_tasks in tasks.items():
                counts, took = copy_table(conn, pool, table, table_tasks, workers)
                rows.update(counts)
                copied = sum(counts.values())
                tables[table] = {"rows": copied, "seconds": took, "rows_per_s": round(copied / max(took, 0.1))}
        began = time.monotonic()
        definitions = [d for _, d in sorted(dropped, key=lambda td: BIGGEST_FIRST.index(td[0]))]
        build_indexes(dataset.url, definitions)
        seconds["indexes"] = round(time.monotonic() - began, 1)
        print(f"  {len(definitions)} indexes built in {seconds['indexes']:.0f}s", flush=True)
        began = time.monotonic()
        for table in FACT_COLUMNS:
            conn.execute(f'ANALYZE "{table}"')
        seconds["analyze"] = round(time.monotonic() - began, 1)
    return {"rows": dict(rows), "tables": tables, "seconds": seconds}


# `rollups rebuild` inserts on one core: the LLM rollups (the largest) and the other
# kinds are rebuilt side by side.
ROLLUP_GROUPS = (("llm",), ("events", "tools", "messages"))


# The rollup tables' partial indexes serve reads only (the covering indexes of the
# hourly usage series); the rebuild does not use them, and they are built faster once
# at the end than row by row.
ROLLUP_TABLES = ("usage_llmrollup", "usage_toolrollup", "usage_eventrollup", "messaging_messagerollup")


def build_rollups(dataset: DataSet) -> None:
    import psycopg

    env = {**os.environ, "DATABASE_URL": dataset.url}
    commands = [
        [sys.executable, "manage.py", "rollups", "rebuild", *(arg for kind in kinds for arg in ("--kind", kind))]
        for kinds in ROLLUP_GROUPS
    ]
    with psycopg.connect(dataset.url, autocommit=True) as conn:
        dropped = drop_secondary_indexes(conn, ROLLUP_TABLES, partial_only=True)
    processes = [subprocess.Popen(command, cwd=ROOT, env=env) for command in commands]
    if any(process.wait() for process in processes):
        raise RuntimeError("rebuilding the rollups failed (see above)")
    build_indexes(dataset.url, [definition for _, definition in dropped])


def fill(dataset: DataSet, workers: int) -> dict:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_meta (identity jsonb, complete boolean, generated_at timestamptz, "
                       "report jsonb)")
    began = time.monotonic()
    ids = create_dimensions(Population(dataset.seed))
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    report = load_facts(dataset, ids, end - timedelta(days=dataset.days), workers)
    report["seconds"]["facts"] = round(time.monotonic() - began, 1)
    print(f"  facts loaded in {report['seconds']['facts']:.0f}s; building rollups …", flush=True)
    began = time.monotonic()
    build_rollups(dataset)
    with connection.cursor() as cursor:
        # As autovacuum would: the rollups' visibility map and planner statistics.
        cursor.execute("VACUUM ANALYZE")
    report["seconds"]["rollups"] = round(time.monotonic() - began, 1)
    print(f"  rollups built in {report['seconds']['rollups']:.0f}s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_meta VALUES (%s, true, now(), %s)",
                       [json.dumps(dataset.identity()), json.dumps(report)])
    return report


def build(dataset: DataSet, *, force: bool = False, workers: int | None = None) -> None:
    """Generate the data set, or reuse it when it is already there."""
    must_fill = prepare(dataset, force=force)
    setup_django(dataset.url)
    if not must_fill:
        print(f"Reusing the data set at scale {dataset.scale:,} ({dataset.name}).", flush=True)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # the schema this checkout expects
        return
    print(f"Generating scale {dataset.scale:,} over {dataset.days} days into {dataset.name} …", flush=True)
    began = time.monotonic()
    report = fill(dataset, workers or os.cpu_count() or 1)
    print(f"Done in {time.monotonic() - began:.0f}s: {report['rows']}", flush=True)


def dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that name a data set; the benchmark takes them too."""
    parser.add_argument("--scale", type=int, default=int(os.environ.get("SCALE", 1_000_000)), help="LLM calls.")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--database", default="", help="Database name (default statsite_bench_<scale>).")


def dataset_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> DataSet:
    if args.scale < 1 or args.days < 1:
        parser.error("--scale and --days must be at least 1")
    return DataSet(args.scale, args.days, args.seed, args.database)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_arguments(parser)
    parser.add_argument("--force", action="store_true", help="Generate again, replacing what the database holds.")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Processes rendering rows.")
    args = parser.parse_args(argv)
    build(dataset_from(parser, args), force=args.force, workers=args.workers)


if __name__ == "__main__":
    main()
