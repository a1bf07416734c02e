"""PostgreSQL vacuums the fact tables once 1% of their rows are dead, not 20%.

Purges delete the oldest rows; until a vacuum clears their index entries, every
query whose range reaches back there (log totals read the rows before a purge
horizon, the planner probes the index's ends) walks the dead entries. With the
default scale factor of 0.2, a daily purge of one day in ninety never triggers one.
"""

from django.db import migrations

FACT_TABLES = ("logs_log", "usage_toolcall", "messaging_message")


def vacuum_sooner(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in FACT_TABLES:
        schema_editor.execute(f'ALTER TABLE "{table}" SET (autovacuum_vacuum_scale_factor = 0.01)')


def vacuum_as_before(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in FACT_TABLES:
        schema_editor.execute(f'ALTER TABLE "{table}" RESET (autovacuum_vacuum_scale_factor)')


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0004_rebuild_rollups"),
        ("logs", "0002_fact_constraints"),
        ("messaging", "0003_rollup_tiers"),
    ]

    operations = [migrations.RunPython(vacuum_sooner, vacuum_as_before)]
