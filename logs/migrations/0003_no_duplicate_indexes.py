"""Drop the log table's indexes that others already serve, without rebuilding anything.

- `user` and `token` each had an index of their own, as every foreign key gets, beside
  the (user, created_at) and (token, created_at) indexes that lead with them and serve
  every lookup by them (and the foreign keys' checks).
- `request_id` was `unique=True`, which on PostgreSQL also builds a `varchar_pattern_ops`
  index for LIKE prefix searches; no query searches request ids so. It is now a
  `UniqueConstraint`, which brings no such index.

At ten million rows these three indexes were 636 MB, each written on every insert.

Django's own operations for these changes would drop and re-add the foreign keys
(validating every row again) and rebuild the unique index; the database side here
only drops the surplus indexes and, on PostgreSQL, gives the unique constraint its
new name. (On SQLite the column keeps its inline UNIQUE, which enforces the same.)
"""

from django.conf import settings
from django.db import migrations, models

from statsite.migration_operations import drop_surplus_indexes, unique_request_id

UNIQUE_REQUEST_ID = "log_request_id_unique"

SURPLUS_INDEXES = drop_surplus_indexes(
    "logs_log",
    {"logs_log_user_id_f24e8690": '("user_id")', "logs_log_token_id_633204ad": '("token_id")'},
    postgres_indexes={"logs_log_request_id_fa517478_like": '("request_id" varchar_pattern_ops)'},
    renamed_constraint=("logs_log_request_id_key", UNIQUE_REQUEST_ID),
)


class Migration(migrations.Migration):
    dependencies = [
        ("logs", "0002_fact_constraints"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[SURPLUS_INDEXES],
            state_operations=[
                migrations.AlterField(
                    model_name="log",
                    name="user",
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True, on_delete=models.deletion.PROTECT,
                        related_name="logs", to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="log",
                    name="token",
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True, on_delete=models.deletion.PROTECT,
                        related_name="logs", to="usage.relaykey",
                    ),
                ),
                *unique_request_id("log", UNIQUE_REQUEST_ID),
            ],
        ),
    ]
