"""Indexes of one channel's and one chat's rows over time, built concurrently on
PostgreSQL (ingest goes on writing the table meanwhile); the channel's foreign-key
index, which the first one leads with, is then dropped, concurrently too.

A question about one channel or one chat that no rollup grain answers (the admin
dashboard narrowed to a channel or a chat: its LLM calls by model, by account and
by chat) reads that channel's or chat's raw rows in the window. With the channel's
foreign-key index alone, PostgreSQL read all of the channel's rows of every day and
threw the others away; without any index of chat_id, it read every row of the
window. At ten million calls, on a machine 2.5-3.5 times slower than BENCH.md's
latest, the dashboard narrowed to the busiest channel (22% of the calls) for 30 days
took 7.1 s and to the busiest chat 3.5 s; with these indexes, 2.4 s and 0.95 s.
There they hold 310 and 332 MB (the channel's own index held 68 MB); the migration
took 32-37 s. Ingest writes one more index entry per row than before (the channel's
index takes the place of its own), within the noise of 1000-call batches on that
machine (one client in the process: 1,221-1,280 calls/s without them, 1,207-1,397
with them).
"""

from django.db import migrations, models

from statsite.migration_operations import concurrent_postgres_indexes, drop_surplus_indexes

INDEXES = {
    "log_channel_time_idx": 'ON "logs_log" ("channel_id", "created_at")',
    "log_chat_time_idx": 'ON "logs_log" ("chat_id", "created_at")',
}

create, drop = concurrent_postgres_indexes(INDEXES, everywhere=True)

# The channel's foreign-key index (Django's name for it), now the leading column of
# log_channel_time_idx: dropped concurrently too, so that ingest never waits for it.
SURPLUS_INDEXES = drop_surplus_indexes(
    "logs_log", {"logs_log_channel_id_baedd0eb": '("channel_id")'}, concurrently=True
)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("logs", "0004_content_search_index"),
        ("usage", "0009_rollup_week_help_text"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The new indexes first: the channel's rows are never without one.
            database_operations=[migrations.RunPython(create, drop), SURPLUS_INDEXES],
            state_operations=[
                migrations.AlterField(
                    model_name="log",
                    name="channel",
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True, on_delete=models.deletion.PROTECT,
                        related_name="logs", to="usage.channel",
                    ),
                ),
                migrations.AddIndex(
                    model_name="log",
                    index=models.Index(fields=["channel", "created_at"], name="log_channel_time_idx"),
                ),
                migrations.AddIndex(
                    model_name="log",
                    index=models.Index(fields=["chat_id", "created_at"], name="log_chat_time_idx"),
                ),
            ],
        ),
    ]
