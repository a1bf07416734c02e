"""The rollup columns' descriptions name the week tier (no change to the database)."""

from django.db import migrations, models

BUCKET = models.DateTimeField(
    help_text="Start of the UTC hour, day or week (from Monday); 2000-01-01 for the all-time tier."
)
GRAIN = models.CharField(max_length=32, help_text="The grain, and its tier when not hourly (model:day, user:week).")


class Migration(migrations.Migration):
    dependencies = [("usage", "0008_week_tier")]

    operations = [
        migrations.AlterField(model_name=model, name=name, field=field.clone())
        for model in ("eventrollup", "llmrollup", "toolrollup")
        for name, field in (("bucket", BUCKET), ("grain", GRAIN))
    ]
