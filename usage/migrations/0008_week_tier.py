"""Fill the week tier of the grains that keep one (the account's LLM usage, a chat
member's messages) from their day rows, which every installation already has.

Week rows are a sum of at most seven day rows per group, so this reads the day tier
once: seconds at ten million calls. New installations have no day rows and write
nothing here; ingest keeps the week tier from then on.
"""

from django.db import migrations


def fill(apps, schema_editor):
    from usage import rollups

    for kind in rollups.ROLLUP_KINDS:
        if rollups.spec(kind).grains_at("week"):
            rollups.rebuild_week_tier(kind)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0007_no_duplicate_indexes"),
        ("messaging", "0004_no_duplicate_indexes"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop, elidable=True)]
