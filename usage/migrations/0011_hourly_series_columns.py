"""The hourly usage series' covering indexes hold columns of their own, so that
updates of every other rollup row are HOT again.

`/api/data/` and `/api/data/self` read the hour rows of the model and account x model
grains from the covering indexes of migration 0006, which held the measures they read
(requests, quota, tokens). PostgreSQL updates a row in place on its page, without a
new entry in each of the table's indexes (HOT), only when no column an index holds has
changed, whatever rows the index is partial to: with the measures in those indexes,
none of the LLM rollups' updates was HOT, and ingest updates some 3,200 rollup rows a
1000-call batch. At ten million calls, on a machine three times slower than BENCH.md's
latest, ingest in 1000-record batches went at 3,450 calls/s with those indexes and
4,850 without them.

Three generated columns repeat what the series reads (requests, quota, prompt +
completion tokens) in the hour rows of those two grains and are NULL in every other
row, which then keeps its indexed columns unchanged when updated; the covering indexes
are built anew over them (concurrently) and the old ones dropped. The database keeps
the columns, whatever writes the rows (ingest, rebuild).

On PostgreSQL the three columns are added by one ALTER TABLE, which rewrites the
table once under an exclusive lock: 45 s at ten million calls on that machine, ingest
and the statistics waiting meanwhile (the whole migration took 54-59 s there; the
reverse, 10 s). SQLite adds them as Django does.
"""

from django.db import migrations, models
from django.db.models.expressions import CombinedExpression

from statsite.migration_operations import OnPostgresAsSQL, concurrent_postgres_indexes, drop_surplus_indexes

GRAINS = ("model", "user_model")
_WHEN = "CASE WHEN \"grain\" IN ('model', 'user_model') THEN {} ELSE NULL END"
COLUMNS = {
    "series_requests": _WHEN.format('"requests"'),
    "series_quota": _WHEN.format('"quota"'),
    "series_tokens": _WHEN.format('("prompt_tokens" + "completion_tokens")'),
}
ADD_COLUMNS = 'ALTER TABLE "usage_llmrollup" ' + ", ".join(
    f'ADD COLUMN "{name}" bigint GENERATED ALWAYS AS ({expression}) STORED' for name, expression in COLUMNS.items()
)
DROP_COLUMNS = 'ALTER TABLE "usage_llmrollup" ' + ", ".join(f'DROP COLUMN "{name}"' for name in COLUMNS)


def _series(value) -> models.GeneratedField:
    return models.GeneratedField(
        db_persist=True,
        expression=models.Case(models.When(grain__in=GRAINS, then=value)),
        output_field=models.BigIntegerField(null=True),
    )


SERIES = '"series_requests", "series_quota", "series_tokens"'
create, drop = concurrent_postgres_indexes({
    # Every model's usage by hour: /api/data/.
    "llmrollup_model_hour_series": (
        f'ON "usage_llmrollup" ("bucket", "model_name" COLLATE "C") INCLUDE ({SERIES}) WHERE "grain" = \'model\''
    ),
    # One account's usage by hour and model: /api/data/self, /api/data/?username=.
    "llmrollup_user_model_hour_series": (
        f'ON "usage_llmrollup" ("user_id", "bucket", "model_name" COLLATE "C") INCLUDE ({SERIES}) '
        "WHERE \"grain\" = 'user_model'"
    ),
})

MEASURES = "requests, quota, prompt_tokens, completion_tokens"
REPLACED = drop_surplus_indexes(
    "usage_llmrollup",
    {},
    postgres_indexes={
        "llmrollup_model_hour_cover": (
            f'("bucket", "model_name" COLLATE "C") INCLUDE ({MEASURES}) WHERE "grain" = \'model\''
        ),
        "llmrollup_user_model_hour_cover": (
            f'("user_id", "bucket", "model_name" COLLATE "C") INCLUDE ({MEASURES}) WHERE "grain" = \'user_model\''
        ),
    },
    concurrently=True,
)


def vacuum(apps, schema_editor) -> None:
    """Mark the rewritten table's pages all-visible again, as index-only scans need
    (until then they visit the table for every row: the month by model read 98 ms
    instead of 76 ms at ten million calls), and give the planner its statistics."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('VACUUM (ANALYZE) "usage_llmrollup"')


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("usage", "0010_pair_day_grains")]

    operations = [
        OnPostgresAsSQL(
            [
                migrations.AddField(
                    model_name="llmrollup", name="series_requests", field=_series(models.F("requests"))
                ),
                migrations.AddField(model_name="llmrollup", name="series_quota", field=_series(models.F("quota"))),
                migrations.AddField(
                    model_name="llmrollup",
                    name="series_tokens",
                    field=_series(CombinedExpression(models.F("prompt_tokens"), "+", models.F("completion_tokens"))),
                ),
            ],
            sql=ADD_COLUMNS,
            reverse_sql=DROP_COLUMNS,
        ),
        # The new indexes first: the reads are never without one.
        migrations.RunPython(create, drop),
        REPLACED,
        migrations.RunPython(vacuum, migrations.RunPython.noop),
    ]
