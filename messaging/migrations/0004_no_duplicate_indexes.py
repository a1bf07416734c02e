"""Drop the message table's foreign key indexes: (chat, created_at) and (sender,
created_at) lead with the same columns and serve every lookup by them. Only the
indexes are dropped; the foreign keys are not validated again.
"""

from django.db import migrations, models

from statsite.migration_operations import drop_surplus_indexes

SURPLUS_INDEXES = drop_surplus_indexes(
    "messaging_message",
    {"messaging_message_chat_id_fe8aa54c": '("chat_id")', "messaging_message_sender_id_7a7088e6": '("sender_id")'},
)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0003_rollup_tiers")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[SURPLUS_INDEXES],
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="chat",
                    field=models.ForeignKey(
                        db_index=False, on_delete=models.deletion.PROTECT, related_name="messages",
                        to="messaging.chat",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="sender",
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True, on_delete=models.deletion.PROTECT,
                        related_name="messages", to="messaging.participant",
                    ),
                ),
            ],
        ),
    ]
