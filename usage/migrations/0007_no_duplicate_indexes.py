"""Drop the tool call table's indexes that others already serve, as logs 0003 does for
the log table: `user`'s own index beside (user, created_at), and on PostgreSQL the
LIKE index that `unique=True` built for `request_id`, now a `UniqueConstraint`.
Nothing is rebuilt or validated again; on SQLite the column keeps its inline UNIQUE.
"""

from django.conf import settings
from django.db import migrations, models

from statsite.migration_operations import drop_surplus_indexes, unique_request_id

UNIQUE_REQUEST_ID = "toolcall_request_id_unique"

SURPLUS_INDEXES = drop_surplus_indexes(
    "usage_toolcall",
    {"usage_toolcall_user_id_a629ffc9": '("user_id")'},
    postgres_indexes={"usage_toolcall_request_id_962d7503_like": '("request_id" varchar_pattern_ops)'},
    renamed_constraint=("usage_toolcall_request_id_key", UNIQUE_REQUEST_ID),
)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0006_hourly_usage_covering_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[SURPLUS_INDEXES],
            state_operations=[
                migrations.AlterField(
                    model_name="toolcall",
                    name="user",
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True, on_delete=models.deletion.PROTECT,
                        related_name="tool_calls", to=settings.AUTH_USER_MODEL,
                    ),
                ),
                *unique_request_id("toolcall", UNIQUE_REQUEST_ID),
            ],
        ),
    ]
