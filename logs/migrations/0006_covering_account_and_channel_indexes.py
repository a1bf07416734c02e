"""The account's and the channel's indexes over time made covering on PostgreSQL:
besides (user, created_at) and (channel, created_at) they hold what an LLM call
aggregate reads of a row, so that the admin dashboard narrowed to an account (its
calls by channel and by chat) or to a channel (its calls by account) reads the
window's entries of the index alone, never the table.

No rollup keeps account x channel or account x chat: a row for each account in a
batch would lengthen the part of ingest that concurrent batches take in turn (BENCH.md
measures it). At ten million calls, on a machine 1.7 times slower than BENCH.md's
latest, the page narrowed to the busiest account took 0.91 s over 30 days and 2.5 s
over 90 days, reading 91,000 table pages a section; with these indexes 0.16 s and
0.47 s. The indexes hold 810 and 902 MB there (the plain ones 381 and 354 MB).

Built concurrently (ingest goes on writing the table), then the plain indexes they
replace are dropped, concurrently too. SQLite builds the plain indexes under the new
names.
"""

from django.db import migrations, models

from statsite.migration_operations import concurrent_postgres_indexes, drop_surplus_indexes


# As logs.models has them when this migration was written.
_CALL_MEASURES = ["id", "type", "model_name", "success", "prompt_tokens", "completion_tokens", "cost"]
USER_COVERS = [*_CALL_MEASURES, "channel", "chat_id"]
CHANNEL_COVERS = [*_CALL_MEASURES, "user", "chat_id", "latency_ms"]


def _columns(names: list[str]) -> str:
    return ", ".join(f'"{name}_id"' if name in ("user", "channel") else f'"{name}"' for name in names)


COVERING = {
    "log_user_time_cover": f'ON "logs_log" ("user_id", "created_at") INCLUDE ({_columns(USER_COVERS)})',
    "log_channel_time_cover": f'ON "logs_log" ("channel_id", "created_at") INCLUDE ({_columns(CHANNEL_COVERS)})',
}
PLAIN = {
    "log_user_time_cover": 'ON "logs_log" ("user_id", "created_at")',
    "log_channel_time_cover": 'ON "logs_log" ("channel_id", "created_at")',
}

create, drop = concurrent_postgres_indexes(COVERING, elsewhere=PLAIN)

REPLACED = drop_surplus_indexes(
    "logs_log",
    {"log_user_time_idx": '("user_id", "created_at")', "log_channel_time_idx": '("channel_id", "created_at")'},
    concurrently=True,
)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("logs", "0005_channel_and_chat_time_indexes")]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The new indexes first: the rows are never without one.
            database_operations=[migrations.RunPython(create, drop), REPLACED],
            state_operations=[
                migrations.RemoveIndex(model_name="log", name="log_user_time_idx"),
                migrations.RemoveIndex(model_name="log", name="log_channel_time_idx"),
                migrations.AddIndex(
                    model_name="log",
                    index=models.Index(
                        fields=["user", "created_at"], include=USER_COVERS, name="log_user_time_cover"
                    ),
                ),
                migrations.AddIndex(
                    model_name="log",
                    index=models.Index(
                        fields=["channel", "created_at"], include=CHANNEL_COVERS, name="log_channel_time_cover"
                    ),
                ),
            ],
        ),
    ]
