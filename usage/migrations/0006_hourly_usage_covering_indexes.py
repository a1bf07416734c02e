"""Two covering indexes on PostgreSQL for the gateway's usage by model and hour,
built concurrently (ingest goes on writing the table meanwhile).

`/api/data/` reads a month of the model grain's hour rows (about 36,000 at ten
million calls) and `/api/data/self` one account's (thousands), ordered by hour then
model. From the table, that is a bitmap scan of some 1,400 pages of wide rows and a
sort; each index below holds exactly the columns those reads take, in their order,
so PostgreSQL answers them by an index-only scan of a few hundred pages, unsorted.

The price: an index that holds the measures makes every update of a rollup row
non-HOT (PostgreSQL keeps an updated row on its page without touching the indexes
only when no indexed column changed), which costs ingest about a sixth of its
throughput (BENCH.md). SQLite, the embedded database, keeps its plain indexes.
A test on PostgreSQL checks that these reads are answered by them
(tests/usage/test_hourly_usage_indexes.py).
"""

from django.db import migrations

from statsite.migration_operations import concurrent_postgres_indexes

MEASURES = "requests, quota, prompt_tokens, completion_tokens"
HOURLY_USAGE_INDEXES = {
    # Every model's usage by hour: /api/data/.
    "llmrollup_model_hour_cover": (
        f'ON "usage_llmrollup" ("bucket", "model_name" COLLATE "C") INCLUDE ({MEASURES}) '
        "WHERE \"grain\" = 'model'"
    ),
    # One account's usage by hour and model: /api/data/self, /api/data/?username=.
    "llmrollup_user_model_hour_cover": (
        f'ON "usage_llmrollup" ("user_id", "bucket", "model_name" COLLATE "C") INCLUDE ({MEASURES}) '
        "WHERE \"grain\" = 'user_model'"
    ),
}


create, drop = concurrent_postgres_indexes(HOURLY_USAGE_INDEXES)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("usage", "0005_fact_tables_vacuumed_after_purges")]

    operations = [migrations.RunPython(create, drop)]
