"""Day rows for the admin dashboard narrowed to one model, channel or chat.

New day grains of pairs of LLM call dimensions (model x channel, model x chat,
channel x chat) and of a chat's tools, counted from the stored facts: no hourly grain
holds them to be added up from. It goes a slice of days per transaction, as
`manage.py rollups rebuild` does, so ingest waits for one slice at a time, never for
the whole migration: it is not atomic, and rerun after an interruption it recounts
every slice again. Days before the purge horizon, and the one it cuts into, get no
pair rows (their facts are gone): the dashboard reads those days from the raw rows
left, as it did before. New installations have no facts and write no rows here;
ingest keeps the new rows from then on.
"""

from django.db import migrations

NEW_DAY_ROWS = {"llm": ["model_channel", "model_chat", "channel_chat"], "tools": ["chat_tool"]}


def fill(apps, schema_editor):
    from usage import rollups

    for kind, grains in NEW_DAY_ROWS.items():
        rollups.rebuild_days_from_facts(kind, grains)


def empty(apps, schema_editor):
    from usage import rollups

    for kind, grains in NEW_DAY_ROWS.items():
        rollups.spec(kind).table.objects.filter(grain__in=[f"{grain}:day" for grain in grains]).delete()


class Migration(migrations.Migration):
    # The fill commits a slice at a time.
    atomic = False

    dependencies = [
        ("usage", "0009_rollup_week_help_text"),
        ("logs", "0005_channel_and_chat_time_indexes"),
    ]

    operations = [migrations.RunPython(fill, empty, elidable=True)]
