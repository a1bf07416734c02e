"""Dimensions (relay keys, channels, model prices) and tool-call facts.

The hourly rollups of LLM and tool calls also live in this app.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from usage.querysets import ToolCallQuerySet

COST_DIGITS = {"max_digits": 20, "decimal_places": 8}
# No fact is older (ingest refuses it; each fact table has a constraint): the all-time
# rollups, and windows "from the beginning", start here.
EARLIEST_FACT = datetime(2000, 1, 1, tzinfo=UTC)


class RelayKey(models.Model):
    """An LLM API key whose usage is logged (`sk-…`). Only its digest is stored."""

    class Status(models.IntegerChoices):
        ENABLED = 1, "enabled"
        DISABLED = 2, "disabled"

    name = models.CharField(max_length=100, blank=True)
    key_hash = models.CharField(
        max_length=64, unique=True, null=True, blank=True, editable=False,
        help_text="SHA-256 of the key; empty for a key known only by name.",
    )
    prefix = models.CharField(max_length=16, blank=True, editable=False, help_text="Visible hint, e.g. sk-ab12…wxyz.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="relay_keys"
    )
    status = models.PositiveSmallIntegerField(choices=Status.choices, default=Status.ENABLED)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            # A key known only by name is one key per owner and name, even under concurrent ingest.
            models.UniqueConstraint(
                fields=["owner", "name"], condition=models.Q(key_hash__isnull=True), name="relaykey_named_unique"
            ),
        ]
        indexes = [
            # ingest: a key named (not given raw) is found by its owner and name.
            models.Index(fields=["owner", "name"], name="relaykey_owner_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'key'} ({self.prefix})" if self.prefix else (self.name or f"key {self.pk}")


class Channel(models.Model):
    """An upstream the gateway routes calls to. Its id is the gateway's own channel id."""

    class Status(models.IntegerChoices):
        ENABLED = 1, "enabled"
        DISABLED = 2, "disabled"

    id = models.PositiveIntegerField(primary_key=True)
    name = models.CharField(max_length=100, db_index=True)
    status = models.PositiveSmallIntegerField(choices=Status.choices, default=Status.ENABLED)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.id})"


class ModelPrice(models.Model):
    """Admin-editable price of a model, used when a recorded call carries no cost."""

    model_name = models.CharField(max_length=128, unique=True)
    input_per_million = models.DecimalField(**COST_DIGITS, default=Decimal(0), help_text="Price of 1M prompt tokens.")
    output_per_million = models.DecimalField(
        **COST_DIGITS, default=Decimal(0), help_text="Price of 1M completion tokens."
    )
    currency = models.CharField(max_length=3, default="USD")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_name"]

    def __str__(self) -> str:
        return self.model_name

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        total = self.input_per_million * prompt_tokens + self.output_per_million * completion_tokens
        return (total / Decimal(1_000_000)).quantize(Decimal("0.00000001"))


class ToolCall(models.Model):
    """One tool execution (append-only fact)."""

    tool_id = models.CharField(max_length=128)
    tool_name = models.CharField(max_length=200, blank=True)
    user = models.ForeignKey(  # indexed by toolcall_user_time_idx, which leads with it
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="tool_calls",
        db_index=False,
    )
    username = models.CharField(max_length=150, blank=True)
    chat_id = models.CharField(max_length=128, blank=True)
    args = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    success = models.BooleanField(default=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(**COST_DIGITS, default=Decimal(0))
    created_at = models.DateTimeField(default=timezone.now)
    request_id = models.CharField(max_length=128, null=True, blank=True)  # unique: Meta.constraints

    objects = ToolCallQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(created_at__gte=EARLIEST_FACT), name="toolcall_not_before_2000"),
            # As logs.Log's: a constraint, without the LIKE index unique=True brings.
            models.UniqueConstraint(fields=["request_id"], name="toolcall_request_id_unique"),
        ]
        indexes = [
            # /api/logs/tools newest first, and purge by age.
            models.Index(fields=["created_at", "id"], name="toolcall_time_idx"),
            # /agent/stats and per-user tool logs: one account over a window.
            models.Index(fields=["user", "created_at"], name="toolcall_user_time_idx"),
            # /api/logs/tools?toolName= and per-tool metering.
            models.Index(fields=["tool_name", "created_at"], name="toolcall_tool_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.tool_id} @ {self.created_at:%Y-%m-%d %H:%M:%S}"


# --- rollups ------------------------------------------------------------------------
#
# Exact aggregates of the facts, kept in the ingest transaction (usage/rollups.py).
# One table per fact kind; each row is one (grain, key, bucket): a grain names the
# dimensions it is grouped by (e.g. "user_model" = account x model) and its tier
# (hourly rows carry the plain name, daily rows "<grain>:day", the all-time row
# "<grain>:all"); `key` joins the dimension values so one unique index serves the
# increments. Dimensions a grain does not use hold their neutral value (0 or "").
# Rollup rows are never purged with the facts.

# Upper bounds (exclusive, ms) of the latency histogram's buckets; the last bucket is open.
LATENCY_BOUNDS_MS = (50, 100, 250, 500, 1000, 2000, 3000, 5000, 8000, 13000, 20000, 30000, 60000, 120000)
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def latency_field_names() -> list[str]:
    return [f"lat_{i:02d}" for i in range(LATENCY_BUCKETS)]


class Rollup(models.Model):
    """What every rollup table has: the bucket's identity, the account and chat
    dimensions, cost and the time of the newest fact counted."""

    grain = models.CharField(max_length=32, help_text="The grain, and its tier when not hourly (model:day, user:week).")
    key = models.CharField(max_length=400)
    bucket = models.DateTimeField(
        help_text="Start of the UTC hour, day or week (from Monday); 2000-01-01 for the all-time tier."
    )
    user_id = models.BigIntegerField(default=0)
    chat_id = models.CharField(max_length=128, default="")
    cost = models.DecimalField(max_digits=28, decimal_places=8, default=Decimal(0))
    last_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        constraints = [
            # The increment target of every ingest upsert.
            models.UniqueConstraint(fields=["grain", "key", "bucket"], name="%(class)s_unique_bucket"),
        ]
        indexes = [
            # Stats over a window for one grain (by model, by channel, by tool, …).
            models.Index(fields=["grain", "bucket"], name="%(class)s_grain_time_idx"),
            # One account's buckets over a window: /api/data/self, /agent/stats.
            models.Index(fields=["grain", "user_id", "bucket"], name="%(class)s_user_time_idx"),
        ]


# The grains whose hour rows the hourly usage series reads, and the column it reads
# there for each measure (usage.selectors).
SERIES_GRAINS = ("model", "user_model")
SERIES_COLUMNS = {
    "requests": "series_requests", "quota": "series_quota", "prompt_tokens+completion_tokens": "series_tokens",
}


def _series(value: models.Expression) -> models.GeneratedField:
    return models.GeneratedField(
        expression=models.Case(models.When(grain__in=SERIES_GRAINS, then=value)),
        output_field=models.BigIntegerField(null=True),
        db_persist=True,
    )


class LLMRollup(Rollup):
    model_name = models.CharField(max_length=128, default="")
    channel_id = models.BigIntegerField(default=0)
    token_name = models.CharField(max_length=100, default="")
    group = models.CharField(max_length=64, default="")
    module = models.CharField(max_length=64, default="")
    request_type = models.CharField(max_length=128, default="")

    requests = models.BigIntegerField(default=0)
    successes = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    quota = models.BigIntegerField(default=0, help_text="Quota of successful calls (consume logs).")
    latency_sum_ms = models.BigIntegerField(default=0)
    latency_count = models.BigIntegerField(default=0, help_text="Calls that reported a latency.")

    # What the hourly usage series (/api/data/) reads of the hour rows of the model and
    # account x model grains, repeated by the database in columns of their own (NULL in
    # every other row) for its covering indexes (migration usage 0011) to hold: an index
    # holding the measures themselves would leave no update of a rollup row HOT.
    series_requests = _series(models.F("requests"))
    series_quota = _series(models.F("quota"))
    series_tokens = _series(models.F("prompt_tokens") + models.F("completion_tokens"))

    class Meta(Rollup.Meta):
        pass


for _name in latency_field_names():
    LLMRollup.add_to_class(_name, models.BigIntegerField(default=0))


class ToolRollup(Rollup):
    tool_id = models.CharField(max_length=128, default="")
    tool_name = models.CharField(max_length=200, default="")

    calls = models.BigIntegerField(default=0)
    successes = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    duration_sum_ms = models.BigIntegerField(default=0)
    duration_count = models.BigIntegerField(default=0, help_text="Calls that reported a duration.")

    class Meta(Rollup.Meta):
        pass


class EventRollup(Rollup):
    """The log rows that are not LLM calls (top-ups, management, system events, errors
    that name no model), counted by type and the gateway's log filters, so a log list
    has its exact total from the rollups: LLM calls are counted in LLMRollup."""

    cost = None
    chat_id = None
    type = models.PositiveSmallIntegerField(default=0)
    model_name = models.CharField(max_length=128, default="")
    token_name = models.CharField(max_length=100, default="")
    channel_id = models.BigIntegerField(default=0)
    group = models.CharField(max_length=64, default="")

    rows = models.BigIntegerField(default=0)

    class Meta(Rollup.Meta):
        pass


class RawDataHorizon(models.Model):
    """How far back raw rows of a kind may have been purged.

    Rollup buckets before the horizon were built from rows that are gone, so
    `rollups rebuild` and `rollups check` leave them alone."""

    kind = models.CharField(max_length=16, unique=True)
    purged_before = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.kind} purged before {self.purged_before:%Y-%m-%d %H:%M}"
