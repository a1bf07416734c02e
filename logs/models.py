"""The log table: one append-only row per thing that happened.

One LLM call is one row (type 2 when it succeeded, type 4 when it failed);
top-ups, management actions and system events are rows of their own types.
The type numbers are the gateway log document's.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from logs.querysets import LogQuerySet
from usage.models import COST_DIGITS, EARLIEST_FACT

# What the LLM call aggregates read of a row (usage.rollups: the count is of ids, the
# call test reads the type and the model), besides the dimension each covering index
# below groups one account's or one channel's calls by. PostgreSQL alone keeps them in
# the index (INCLUDE); SQLite builds the plain index.
_CALL_MEASURES = ["id", "type", "model_name", "success", "prompt_tokens", "completion_tokens", "cost"]
USER_COVERS = [*_CALL_MEASURES, "channel", "chat_id"]
CHANNEL_COVERS = [*_CALL_MEASURES, "user", "chat_id", "latency_ms"]


class Log(models.Model):
    class Type(models.IntegerChoices):
        TOPUP = 1, "topup"
        CONSUME = 2, "consume"
        MANAGE = 3, "manage"
        ERROR = 4, "error"
        SYSTEM = 5, "system"

    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARN = "warn"
        ERROR = "error"

    # --- the gateway log document's fields ---
    # The foreign keys' lookups are served by the (key, created_at) indexes below, which
    # lead with them: no index of their own.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="logs",
        db_index=False,
    )
    username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    type = models.PositiveSmallIntegerField(choices=Type.choices)
    content = models.TextField(blank=True)
    token = models.ForeignKey(
        "usage.RelayKey", null=True, blank=True, on_delete=models.PROTECT, related_name="logs", db_index=False
    )
    token_name = models.CharField(max_length=100, blank=True)
    model_name = models.CharField(max_length=128, blank=True)
    quota = models.BigIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    use_time = models.PositiveIntegerField(default=0, help_text="Seconds, as the gateway counts it.")
    is_stream = models.BooleanField(default=False)
    channel = models.ForeignKey(
        "usage.Channel", null=True, blank=True, on_delete=models.PROTECT, related_name="logs", db_index=False
    )
    group = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    other = models.JSONField(default=dict, blank=True)

    # --- what the bot dialects need besides ---
    module = models.CharField(max_length=64, blank=True)
    request_type = models.CharField(max_length=128, blank=True)
    cost = models.DecimalField(**COST_DIGITS, default=Decimal(0))
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    success = models.BooleanField(default=True)
    level = models.CharField(max_length=5, choices=Level.choices, default=Level.INFO)
    chat_id = models.CharField(max_length=128, blank=True)
    request_id = models.CharField(max_length=128, null=True, blank=True)  # unique: Meta.constraints

    objects = LogQuerySet.as_manager()

    class Meta:
        constraints = [
            # Only error rows record a failure: among LLM calls, type 2 is exactly a success,
            # which lets the rollups' success and error counts stand for the two types.
            models.CheckConstraint(
                condition=models.Q(type=4, success=False) | (~models.Q(type=4) & models.Q(success=True)),
                name="log_success_matches_type",
            ),
            # Ingest refuses older facts; the all-time rollups count from here (usage.rollups).
            models.CheckConstraint(condition=models.Q(created_at__gte=EARLIEST_FACT), name="log_not_before_2000"),
            # Ingest retries: a request id is stored once. A constraint rather than
            # unique=True, which on PostgreSQL also builds a pattern-matching (LIKE) index
            # that no query uses, written on every insert.
            models.UniqueConstraint(fields=["request_id"], name="log_request_id_unique"),
        ]
        indexes = [
            # /api/log/ page ordering (created_at desc, id desc) and purge by age.
            models.Index(fields=["created_at", "id"], name="log_time_idx"),
            # /api/log/self, /api/log/self/stat: one account's rows over a window. On
            # PostgreSQL it holds what the admin dashboard narrowed to an account counts
            # of its calls by channel and by chat (no rollup keeps those pairs), so that
            # they are read from the index alone.
            models.Index(fields=["user", "created_at"], name="log_user_time_cover", include=USER_COVERS),
            # /api/log/token: one relay key's rows, newest first.
            models.Index(fields=["token", "created_at"], name="log_token_time_idx"),
            # /api/log/?model_name=: one model over a window.
            models.Index(fields=["model_name", "created_at"], name="log_model_time_idx"),
            # /api/log/?type=, /api/logs (system/error logs), rpm/tpm on consume rows.
            models.Index(fields=["type", "created_at"], name="log_type_time_idx"),
            # One channel's or one chat's rows over a window, where no rollup grain holds
            # the other dimensions asked for with it (the dashboard narrowed to a channel:
            # its calls by account, and its last 24 hours by model; narrowed to a chat:
            # its calls by account). The channel's holds what those count, as the
            # account's does.
            models.Index(fields=["channel", "created_at"], name="log_channel_time_cover", include=CHANNEL_COVERS),
            models.Index(fields=["chat_id", "created_at"], name="log_chat_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} #{self.pk} @ {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
