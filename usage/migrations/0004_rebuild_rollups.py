"""Fill the day and all-time tiers, the token-name grain and the event rollups.

Runs the live rebuild (`usage.rollups.rebuild`) once, at upgrade: the hour tier from
the facts (history before a purge horizon is kept), the coarser tiers from the hour
tier. The token-name grain replaces the relay-key-id grain; hours before a purge
horizon cannot be rebuilt for it, as their raw rows are gone.
"""

from django.db import migrations


def rebuild(apps, schema_editor):
    facts = ("logs.Log", "usage.ToolCall", "messaging.Message")
    if not any(apps.get_model(name).objects.exists() for name in facts):
        return  # a new installation: nothing to roll up
    from usage import rollups

    apps.get_model("usage", "LLMRollup").objects.filter(grain="token").delete()
    for kind in rollups.ROLLUP_KINDS:
        rollups.rebuild(kind)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0003_rollup_tiers_and_events"),
        ("messaging", "0003_rollup_tiers"),
        ("logs", "0002_fact_constraints"),
    ]

    operations = [migrations.RunPython(rebuild, migrations.RunPython.noop, elidable=True)]
