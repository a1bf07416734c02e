"""Fill a PostgreSQL database with a realistic statsite data set, fast.

    python -m bench.generate --scale 1000000 [--days 90] [--force]

Each scale gets its own database (`statsite_bench_<scale>` on the server of
BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres); a data set
already generated at that scale is reused. The shape: SCALE LLM calls over
DAYS days with a daily and a weekly rhythm, 1,000 accounts, 5,000 relay keys,
50 models with skewed popularity, 20 channels, 5% failed calls; tool calls
(10% of calls), chat messages (50%) and logs of every other type (3%).

Facts go in with COPY (the raw rows, in time order, as a live system would
have written them); the rollups are built at the end with `rollups rebuild`,
the same code that repairs them in production. The relay keys' raw values are
kept in var/bench/keys-<scale>.json for the public token lookup benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"

ACCOUNTS = 1000
RELAY_KEYS = 5000
MODELS = 50
CHANNELS = 20
CHATS = 200
PARTICIPANTS = 2000
FAILURE_RATE = 0.05
TOOL_CALL_SHARE = 0.10
MESSAGE_SHARE = 0.50
OTHER_LOG_SHARE = 0.03
TOOLS = ["get_time", "web_search", "get_weather", "calculator", "image_gen", "memory.save", "memory.search",
         "shouji_query", "translate", "code_run"]


def database_url(scale: int) -> str:
    server = os.environ.get("BENCH_PG_URL", DEFAULT_SERVER_URL)
    return server.rsplit("/", 1)[0] + f"/statsite_bench_{scale}"


def ensure_database(scale: int, *, force: bool) -> bool:
    """Create the scale's database if needed; True when it must be (re)filled."""
    import psycopg

    server = os.environ.get("BENCH_PG_URL", DEFAULT_SERVER_URL)
    name = f"statsite_bench_{scale}"
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and force:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            return True
    with psycopg.connect(database_url(scale)) as conn:
        done = conn.execute(
            "SELECT 1 FROM pg_tables WHERE tablename = 'bench_meta'"
        ).fetchone() and conn.execute("SELECT complete FROM bench_meta WHERE scale = %s", [scale]).fetchone()
        return not (done and done[0])


def setup_django(scale: int) -> None:
    os.environ["DATABASE_URL"] = database_url(scale)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def hour_weights(start: datetime, hours: int) -> list[float]:
    """Traffic by hour: quiet at night, busy in the afternoon, quieter at weekends."""
    weights = []
    for h in range(hours):
        moment = start + timedelta(hours=h)
        daily = 0.25 + 0.75 * max(0.0, math.sin(math.pi * (moment.hour - 6) / 16)) if 6 <= moment.hour <= 22 else 0.15
        weekly = 0.6 if moment.weekday() >= 5 else 1.0
        weights.append(daily * weekly)
    return weights


class World:
    """The dimension rows, created through the ORM (they are few)."""

    def __init__(self, rng: random.Random, scale: int) -> None:
        from django.contrib.auth.hashers import make_password
        from django.contrib.auth.models import User

        from messaging.models import Chat, Participant
        from statsite import credentials
        from usage.models import Channel, ModelPrice, RelayKey

        unusable = make_password(None)
        User.objects.bulk_create([User(username=f"user{i:04d}", password=unusable) for i in range(ACCOUNTS)])
        self.users = list(User.objects.filter(username__startswith="user").order_by("id").values_list("id", "username"))
        self.user_weights = [1 / (i + 1) ** 0.8 for i in range(len(self.users))]

        raw_keys = [f"sk-bench{scale}-{i:05d}-{rng.getrandbits(64):016x}" for i in range(RELAY_KEYS)]
        owners = [self.users[i % len(self.users)][0] for i in range(RELAY_KEYS)]
        RelayKey.objects.bulk_create(
            [
                RelayKey(
                    name=f"key-{i}", key_hash=credentials.digest(raw), prefix=credentials.relay_key_hint(raw),
                    owner_id=owners[i],
                )
                for i, raw in enumerate(raw_keys)
            ]
        )
        keys = list(RelayKey.objects.order_by("id").values_list("id", "name", "owner_id"))
        self.keys_by_owner: dict[int, list[tuple[int, str]]] = {}
        for key_id, name, owner in keys:
            self.keys_by_owner.setdefault(owner, []).append((key_id, name))
        self.raw_keys = raw_keys

        Channel.objects.bulk_create([Channel(id=i + 1, name=f"channel-{i + 1:02d}") for i in range(CHANNELS)])
        self.channels = [(i + 1, f"channel-{i + 1:02d}") for i in range(CHANNELS)]

        self.models = [f"model-{i:02d}" for i in range(MODELS)]
        self.model_weights = [1 / (i + 1) ** 1.2 for i in range(MODELS)]  # a few models take most traffic
        ModelPrice.objects.bulk_create(
            [
                ModelPrice(model_name=m, input_per_million=Decimal(str(0.1 + i * 0.3)),
                           output_per_million=Decimal(str(0.4 + i * 1.2)))
                for i, m in enumerate(self.models)
            ]
        )
        self.prices = {m: (Decimal(str(0.1 + i * 0.3)), Decimal(str(0.4 + i * 1.2))) for i, m in enumerate(self.models)}

        Chat.objects.bulk_create(
            [Chat(chat_id=f"chat{i:04d}", kind="group" if i % 4 else "private", name=f"Chat {i}") for i in range(CHATS)]
        )
        self.chats = list(Chat.objects.order_by("id").values_list("id", "chat_id"))
        Participant.objects.bulk_create(
            [Participant(user_id=f"user{i:04d}", nickname=f"Person {i}") for i in range(PARTICIPANTS)]
        )
        self.participants = list(Participant.objects.order_by("id").values_list("id", flat=True))


FACT_TABLES = ("logs_log", "usage_toolcall", "messaging_message")


def drop_secondary_indexes(cursor, tables) -> list[str]:
    """Drop the plain (non-unique, non-primary) indexes of TABLES; return how to rebuild them."""
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = ANY(%s) AND NOT i.indisunique AND NOT i.indisprimary",
        [list(tables)],
    )
    found = cursor.fetchall()
    for name, _ in found:
        cursor.execute(f"DROP INDEX {name}")
    return [definition for _, definition in found]


def copy_rows(cursor, table: str, columns: list[str], rows) -> int:
    count = 0
    with cursor.copy(f'COPY "{table}" ({", ".join(chr(34) + c + chr(34) for c in columns)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


LOG_COLUMNS = [
    "user_id", "username", "created_at", "type", "content", "token_id", "token_name", "model_name", "quota",
    "prompt_tokens", "completion_tokens", "use_time", "is_stream", "channel_id", "group", "ip", "other", "module",
    "request_type", "cost", "latency_ms", "success", "level", "chat_id", "request_id",
]
TOOL_COLUMNS = ["tool_id", "tool_name", "user_id", "username", "chat_id", "args", "result", "success", "duration_ms",
                "cost", "created_at", "request_id"]
MESSAGE_COLUMNS = ["message_id", "chat_id", "sender_id", "sent_by_bot", "created_at", "text_length", "text"]
MODULES = [("chat", "chat.reply"), ("planner", "planner.step"), ("memory", "memory.summarize"), ("", "embedding")]
QUANTUM = Decimal("0.00000001")


def generate(scale: int, days: int, seed: int = 42) -> dict[str, int]:
    from django.db import connection

    rng = random.Random(seed)
    world = World(rng, scale)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    hours = days * 24
    weights = hour_weights(start, hours)
    total_weight = sum(weights)
    per_hour = [scale * w / total_weight for w in weights]

    home_channel = {m: world.channels[i % CHANNELS][0] for i, m in enumerate(world.models)}
    counts = {"llm_calls": 0, "tool_calls": 0, "messages": 0, "other_logs": 0}
    started = time.monotonic()
    last_report = started

    def llm_rows():
        for h in range(hours):
            n = int(per_hour[h] + rng.random())
            base = start + timedelta(hours=h)
            seconds = sorted(rng.random() * 3600 for _ in range(n))
            users = rng.choices(world.users, weights=world.user_weights, k=n)
            models = rng.choices(world.models, weights=world.model_weights, k=n)
            for i in range(n):
                user_id, username = users[i]
                model = models[i]
                key_id, key_name = rng.choice(world.keys_by_owner[user_id])
                # Most calls of a model go to its home channel; some are routed elsewhere.
                channel_id = home_channel[model] if rng.random() < 0.8 else rng.randrange(1, CHANNELS + 1)
                ok = rng.random() >= FAILURE_RATE
                prompt = rng.randrange(20, 4000)
                completion = rng.randrange(5, 1500) if ok else 0
                price_in, price_out = world.prices[model]
                cost = ((price_in * prompt + price_out * completion) / 1_000_000).quantize(QUANTUM)
                latency = int(rng.lognormvariate(7.0, 0.7))
                module, request_type = MODULES[i % 4]
                chat = world.chats[rng.randrange(CHATS)][1] if rng.random() < 0.3 else ""
                yield (
                    user_id, username, base + timedelta(seconds=seconds[i]), 2 if ok else 4,
                    "" if ok else "upstream error: rate limit exceeded", key_id, key_name, model,
                    int(cost * 500_000) if ok else 0, prompt, completion, round(latency / 1000), rng.random() < 0.6,
                    channel_id, "default" if rng.random() < 0.8 else "vip", "10.0.0.1",
                    "{}" if ok else '{"error": "rate limit exceeded"}', module or request_type.split(".")[0],
                    request_type, cost, latency, ok, "info" if ok else "error", chat, None,
                )

    def tool_rows():
        for h in range(hours):
            n = int(per_hour[h] * TOOL_CALL_SHARE + rng.random())
            base = start + timedelta(hours=h)
            for s in sorted(rng.random() * 3600 for _ in range(n)):
                user_id, username = rng.choices(world.users, weights=world.user_weights)[0]
                tool = rng.choice(TOOLS)
                yield (tool, tool.replace("_", " "), user_id, username, "", '{"q": "x"}', '{"ok": true}',
                       rng.random() > 0.04, int(rng.lognormvariate(5.5, 1.0)), Decimal("0.002"),
                       base + timedelta(seconds=s), None)

    def message_rows():
        for h in range(hours):
            n = int(per_hour[h] * MESSAGE_SHARE + rng.random())
            base = start + timedelta(hours=h)
            for s in sorted(rng.random() * 3600 for _ in range(n)):
                by_bot = rng.random() < 0.3
                length = rng.randrange(1, 300)
                yield (None, world.chats[rng.randrange(CHATS)][0], rng.choice(world.participants), by_bot,
                       base + timedelta(seconds=s), length, "")

    def other_log_rows():
        for h in range(hours):
            n = int(per_hour[h] * OTHER_LOG_SHARE + rng.random())
            base = start + timedelta(hours=h)
            for s in sorted(rng.random() * 3600 for _ in range(n)):
                kind = rng.choice([1, 3, 4, 5, 5, 5])
                user_id, username = rng.choice(world.users) if kind in (1, 3) else (None, "")
                level = {4: "error"}.get(kind, rng.choice(["debug", "info", "info", "warn"]))
                yield (user_id, username, base + timedelta(seconds=s), kind, f"event of type {kind}", None, "", "",
                       rng.randrange(0, 10_000_000) if kind == 1 else 0, 0, 0, 0, False, None, "", None,
                       '{"stack": "Traceback ..."}' if kind == 4 else "{}", "", "", Decimal(0), None, kind != 4,
                       level, "", None)

    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # the psycopg cursor, for COPY
        # A bulk load's usual shape: foreign-key triggers off for this session (every
        # id written comes from the rows just created) and secondary indexes built
        # once at the end instead of maintained row by row.
        cursor.execute("SET session_replication_role = replica")
        dropped = drop_secondary_indexes(cursor, FACT_TABLES)
        counts["llm_calls"] = copy_rows(cursor, "logs_log", LOG_COLUMNS, llm_rows())
        report("llm calls", counts["llm_calls"], started)
        counts["other_logs"] = copy_rows(cursor, "logs_log", LOG_COLUMNS, other_log_rows())
        counts["tool_calls"] = copy_rows(cursor, "usage_toolcall", TOOL_COLUMNS, tool_rows())
        counts["messages"] = copy_rows(cursor, "messaging_message", MESSAGE_COLUMNS, message_rows())
        report("all facts", sum(counts.values()), started)
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for definition in dropped:
            cursor.execute(definition)
        report("indexes rebuilt", sum(counts.values()), started)
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "var" / "bench" / f"keys-{scale}.json").write_text(json.dumps(world.raw_keys[:200]))
    return counts


def report(label: str, rows: int, started: float) -> None:
    elapsed = time.monotonic() - started
    print(f"  {label}: {rows:,} rows in {elapsed:.0f}s ({rows / max(elapsed, 1e-9):,.0f} rows/s)", flush=True)


def build(scale: int, days: int, *, force: bool = False) -> None:
    fill = ensure_database(scale, force=force)
    setup_django(scale)
    from django.core.management import call_command
    from django.db import connection

    if not fill:
        print(f"Reusing the data set at scale {scale:,} ({database_url(scale)}).")
        return
    print(f"Generating scale {scale:,} into {database_url(scale)} …", flush=True)
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_meta (scale bigint PRIMARY KEY, complete boolean, "
                       "generated_at timestamptz, facts jsonb)")
        cursor.execute("TRUNCATE bench_meta")
    began = time.monotonic()
    counts = generate(scale, days)
    print("Building rollups …", flush=True)
    rollup_began = time.monotonic()
    call_command("rollups", "rebuild", verbosity=1)
    print(f"  rollups built in {time.monotonic() - rollup_began:.0f}s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("INSERT INTO bench_meta VALUES (%s, true, now(), %s)", [scale, json.dumps(counts)])
    print(f"Done in {time.monotonic() - began:.0f}s: {counts}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=int(os.environ.get("SCALE", 1_000_000)))
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--force", action="store_true", help="Generate again even if the data set exists.")
    args = parser.parse_args(argv)
    if args.scale < 1 or args.days < 1:
        parser.error("--scale and --days must be at least 1")
    build(args.scale, args.days, force=args.force)


if __name__ == "__main__":
    main()
