"""manage.py purge: cutoffs, filters, dry runs, retention settings and bad arguments."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from logs.models import Log
from messaging.models import Chat, Message
from statsite.timeparse import parse_age, parse_instant
from usage.models import ToolCall

CUTOFF = datetime(2025, 1, 1, tzinfo=UTC)


def make_log(created_at: datetime, log_type: int = 2) -> Log:
    return Log.objects.create(created_at=created_at, type=log_type, success=log_type != 4, model_name="gpt-4o")


def make_tool_call(created_at: datetime) -> ToolCall:
    return ToolCall.objects.create(created_at=created_at, tool_id="weather")


def make_message(created_at: datetime) -> Message:
    chat, _ = Chat.objects.get_or_create(chat_id="g1")
    return Message.objects.create(chat=chat, created_at=created_at)


def run(*args: str, **options) -> str:
    out = io.StringIO()
    call_command("purge", *args, stdout=out, **options)
    return out.getvalue()


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
class TestByCutoff:
    def test_it_purges_logs_created_before_the_given_instant(self):
        old = [make_log(CUTOFF - timedelta(days=d)) for d in (1, 10, 100)]
        kept = [make_log(CUTOFF), make_log(CUTOFF + timedelta(seconds=1))]

        out = run("logs", "--before", "2025-01-01T00:00:00Z")

        assert "cutoff: 2025-01-01T00:00:00Z" in out
        assert "logs: 3 rows to purge" in out
        assert out.strip().splitlines()[-1] == "purged 3 logs created before 2025-01-01T00:00:00Z"
        assert set(Log.objects.values_list("pk", flat=True)) == {row.pk for row in kept}
        assert not Log.objects.filter(pk__in=[row.pk for row in old]).exists()

    def test_a_bare_date_means_its_midnight_in_the_server_time_zone(self, settings):
        settings.TIME_ZONE = "Asia/Shanghai"
        make_log(datetime(2024, 12, 31, 15, 59, tzinfo=UTC))  # 23:59 in Shanghai
        make_log(datetime(2024, 12, 31, 16, 0, tzinfo=UTC))  # midnight in Shanghai

        out = run("logs", "--before", "2025-01-01")

        assert "cutoff: 2024-12-31T16:00:00Z" in out
        assert Log.objects.count() == 1

    @pytest.mark.parametrize(
        ("age", "old", "new"),
        [
            ("30d", timedelta(days=31), timedelta(days=29)),
            ("12h", timedelta(hours=13), timedelta(hours=11)),
            ("2w", timedelta(days=15), timedelta(days=13)),
        ],
    )
    def test_it_purges_tool_calls_older_than_an_age(self, age, old, new):
        now = timezone.now()
        make_tool_call(now - old)
        kept = make_tool_call(now - new)

        out = run("tool-calls", "--older-than", age)

        assert out.strip().splitlines()[-1].startswith("purged 1 tool calls created before ")
        assert list(ToolCall.objects.values_list("pk", flat=True)) == [kept.pk]

    def test_the_printed_cutoff_of_an_age_is_the_one_used(self):
        out = run("messages", "--older-than", "1d", "--dry-run")
        printed = out.splitlines()[0].removeprefix("cutoff: ")
        cutoff = datetime.fromisoformat(printed)
        assert cutoff.microsecond == 0
        assert abs(timezone.now() - timedelta(days=1) - cutoff) < timedelta(seconds=5)

    def test_it_purges_messages_in_batches(self):
        for day in range(1, 8):
            make_message(CUTOFF - timedelta(days=day))
        kept = make_message(CUTOFF + timedelta(days=1))

        out = run("messages", "--before", "2025-01-01", "--batch-size", "2")

        assert "purged 7 messages created before 2025-01-01T00:00:00Z" in out
        assert list(Message.objects.values_list("pk", flat=True)) == [kept.pk]

    def test_it_purges_only_the_given_log_type(self):
        make_log(CUTOFF - timedelta(days=1), log_type=2)
        error = make_log(CUTOFF - timedelta(days=1), log_type=4)
        system = make_log(CUTOFF - timedelta(days=2), log_type=5)

        out = run("logs", "--before", "2025-01-01", "--type", "2")

        assert "purged 1 logs of type 2 (consume) created before 2025-01-01T00:00:00Z" in out
        assert set(Log.objects.values_list("pk", flat=True)) == {error.pk, system.pk}

    def test_a_dry_run_changes_nothing_and_prints_the_count(self):
        for day in (1, 2, 3):
            make_log(CUTOFF - timedelta(days=day))
        make_log(CUTOFF + timedelta(days=1))

        out = run("logs", "--before", "2025-01-01", "--dry-run")

        assert "logs: 3 rows to purge" in out
        assert out.strip().splitlines()[-1] == "dry run: would purge 3 logs created before 2025-01-01T00:00:00Z"
        assert Log.objects.count() == 4

    def test_nothing_to_purge_is_reported_as_zero(self):
        make_log(CUTOFF + timedelta(days=1))
        out = run("logs", "--before", "2025-01-01")
        assert out.strip().splitlines()[-1] == "purged 0 logs created before 2025-01-01T00:00:00Z"
        assert Log.objects.count() == 1

    def test_it_shows_progress_on_a_terminal_only(self):
        for day in (1, 2):
            make_log(CUTOFF - timedelta(days=day))
        terminal = FakeTerminal()
        run("logs", "--before", "2025-01-01", stderr=terminal)
        assert "2/2" in terminal.getvalue()

        make_log(CUTOFF - timedelta(days=1))
        quiet = FakeTerminal()
        out = run("logs", "--before", "2025-01-01", stderr=quiet, verbosity=0)
        assert quiet.getvalue() == ""
        assert out == ""
        assert Log.objects.count() == 0


@pytest.mark.django_db
class TestRetention:
    def test_it_applies_each_kinds_retention_setting(self, settings):
        settings.LOG_RETENTION_DAYS = 30
        settings.TOOL_CALL_RETENTION_DAYS = None
        settings.MESSAGE_RETENTION_DAYS = 7
        now = timezone.now()
        make_log(now - timedelta(days=31))
        recent_log = make_log(now - timedelta(days=29))
        old_tool_call = make_tool_call(now - timedelta(days=400))
        make_message(now - timedelta(days=8))
        recent_message = make_message(now - timedelta(days=6))

        out = run("--retention")

        assert "logs: keeping 30 days (LOG_RETENTION_DAYS), cutoff " in out
        assert "tool calls: TOOL_CALL_RETENTION_DAYS is not set, keeping all" in out
        assert "messages: keeping 7 days (MESSAGE_RETENTION_DAYS), cutoff " in out
        assert "purged 1 logs created before " in out
        assert "purged 1 messages created before " in out
        assert list(Log.objects.values_list("pk", flat=True)) == [recent_log.pk]
        assert list(ToolCall.objects.values_list("pk", flat=True)) == [old_tool_call.pk]
        assert list(Message.objects.values_list("pk", flat=True)) == [recent_message.pk]

    def test_without_settings_it_keeps_everything(self, settings):
        settings.LOG_RETENTION_DAYS = None
        settings.TOOL_CALL_RETENTION_DAYS = None
        settings.MESSAGE_RETENTION_DAYS = None
        make_log(timezone.now() - timedelta(days=4000))
        make_tool_call(timezone.now() - timedelta(days=4000))

        out = run("--retention")

        assert out.splitlines() == [
            "logs: LOG_RETENTION_DAYS is not set, keeping all",
            "tool calls: TOOL_CALL_RETENTION_DAYS is not set, keeping all",
            "messages: MESSAGE_RETENTION_DAYS is not set, keeping all",
        ]
        assert Log.objects.count() == 1
        assert ToolCall.objects.count() == 1

    def test_a_dry_run_of_retention_changes_nothing(self, settings):
        settings.LOG_RETENTION_DAYS = 1
        settings.TOOL_CALL_RETENTION_DAYS = 1
        settings.MESSAGE_RETENTION_DAYS = 1
        make_log(timezone.now() - timedelta(days=2))
        make_tool_call(timezone.now() - timedelta(days=2))

        out = run("--retention", "--dry-run")

        assert "dry run: would purge 1 logs created before " in out
        assert "dry run: would purge 1 tool calls created before " in out
        assert "dry run: would purge 0 messages created before " in out
        assert Log.objects.count() == 1
        assert ToolCall.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["logs"], "exactly one of --before"),
        (["logs", "--before", "2025-01-01", "--older-than", "30d"], "exactly one of --before"),
        (["logs", "--older-than", "30"], "is not an age"),
        (["logs", "--older-than", "30m"], "is not an age"),
        (["logs", "--older-than", "0d"], "at least 1"),
        (["logs", "--older-than", "99999999999w"], "--older-than"),
        (["logs", "--before", "yesterday"], "is not an ISO 8601"),
        (["logs", "--before", "2025-02-30"], "not a valid date"),
        (["messages", "--older-than", "30d", "--type", "2"], "--type only applies to logs"),
        (["logs", "--older-than", "30d", "--type", "9"], "--type must be one of"),
        (["logs", "--older-than", "30d", "--type", "consume"], "--type must be one of"),
        (["logs", "--older-than", "30d", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["logs", "--older-than", "30d", "--batch-size", "many"], "--batch-size must be a whole number"),
        ([], "Say what to purge"),
        (["users", "--older-than", "30d"], "invalid choice"),
        (["--retention", "logs"], "--retention takes no kind"),
        (["--retention", "--older-than", "30d"], "--retention takes no kind"),
    ],
)
def test_it_rejects_bad_arguments(args, message):
    make_log(CUTOFF - timedelta(days=1))
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run(*args)
    assert Log.objects.count() == 1


def test_ages_and_instants_parse():
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age(" 12H ") == timedelta(hours=12)
    assert parse_age("2w") == timedelta(weeks=2)
    assert parse_instant("2025-01-01T08:00:00+08:00") == CUTOFF
    assert parse_instant("2025-01-01T00:00:00Z") == CUTOFF


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="autovacuum is PostgreSQL's")
@pytest.mark.parametrize("table", ["logs_log", "usage_toolcall", "messaging_message"])
def test_fact_tables_are_vacuumed_once_a_purge_leaves_one_percent_dead(db, table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [table])
        assert "autovacuum_vacuum_scale_factor=0.01" in cursor.fetchone()[0]
