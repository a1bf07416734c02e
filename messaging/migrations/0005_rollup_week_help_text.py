"""The message rollups' column descriptions name the week tier, as the other rollups'
do (usage 0009, whose fields these are; no change to the database)."""

import importlib

from django.db import migrations

usage_0009 = importlib.import_module("usage.migrations.0009_rollup_week_help_text")


class Migration(migrations.Migration):
    dependencies = [("messaging", "0004_no_duplicate_indexes"), ("usage", "0009_rollup_week_help_text")]

    operations = [
        migrations.AlterField(model_name="messagerollup", name=name, field=field.clone())
        for name, field in (("bucket", usage_0009.BUCKET), ("grain", usage_0009.GRAIN))
    ]
