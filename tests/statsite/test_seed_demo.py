"""`manage.py seed_demo`: realistic demo data through the ingest code path."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from logs.models import Log
from messaging.models import Chat, Message, Participant
from statsite.management.commands import seed_demo
from usage.models import Channel, ModelPrice, RelayKey, ToolCall

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def row_counts() -> dict[str, int]:
    return {
        "logs": Log.objects.count(),
        "tool_calls": ToolCall.objects.count(),
        "messages": Message.objects.count(),
        "prices": ModelPrice.objects.count(),
    }


@pytest.fixture
def frozen_now(monkeypatch) -> datetime:
    """Both runs of a test see the same 'now', so none of today's events falls between them."""
    moment = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(seed_demo, "_now", lambda: moment)
    return moment


@pytest.mark.django_db
def test_it_creates_rows_of_every_kind(frozen_now):
    run("--days", "2")

    assert set(Log.objects.values_list("type", flat=True).distinct()) == {1, 2, 3, 4, 5}
    levels = set(Log.objects.filter(type=5).values_list("level", flat=True).distinct())
    assert levels == {"debug", "info", "warn", "error"}
    assert Log.objects.filter(type=1, quota__gt=0).exists()

    failed = Log.objects.filter(type=4, success=False).exclude(model_name="")
    assert failed.filter(content="API rate limit exceeded").exists()
    call = failed.first()
    assert set(call.other["context"]) == {"channel", "model"}
    assert call.other["context"]["model"] == call.model_name
    assert Log.objects.filter(type=2, success=True, prompt_tokens__gt=0).exists()

    error_log = Log.objects.filter(type=4, model_name="").first()
    assert error_log is not None and {"stack", "context"} <= set(error_log.other)

    assert ToolCall.objects.filter(success=True).exists()
    assert ToolCall.objects.filter(success=False, duration_ms__gt=0).exists()
    assert ToolCall.objects.values("tool_id").distinct().count() >= 4

    assert set(Chat.objects.values_list("kind", flat=True).distinct()) == {"group", "private"}
    assert Message.objects.filter(sent_by_bot=True).exists()
    assert Message.objects.filter(sent_by_bot=False).exists()
    assert not Participant.objects.filter(nickname="").exists()

    assert ModelPrice.objects.count() >= 12
    assert Channel.objects.filter(name="OpenAI 主渠道").exists()
    assert RelayKey.objects.filter(prefix__startswith="sk-", owner__isnull=False).count() >= 5


@pytest.mark.django_db
def test_a_second_run_creates_nothing_new(frozen_now):
    first, _ = run("--days", "2", "--no-progress")
    counts = row_counts()

    second, _ = run("--days", "2", "--no-progress")

    assert row_counts() == counts
    total = sum(counts.values())
    assert f"created {total}, duplicates 0" in first
    assert f"created 0, duplicates {total}" in second


@pytest.mark.django_db
def test_a_run_on_a_later_day_adds_only_what_is_new(monkeypatch, settings, frozen_now):
    yesterday = frozen_now - timedelta(days=1)
    monkeypatch.setattr(seed_demo, "_now", lambda: yesterday)
    run("--days", "2")
    seen_ids = set(Log.objects.values_list("request_id", flat=True))
    # Counted by the day in the ids: a late reply may be dated just after midnight.
    stamp = f"-{yesterday.astimezone(ZoneInfo(settings.STATS_TIME_ZONE)):%Y%m%d}-"
    seen_that_day = (
        Log.objects.filter(request_id__contains=stamp).count()
        + ToolCall.objects.filter(request_id__contains=stamp).count()
        + Message.objects.filter(message_id__contains=stamp).count()
    )
    monkeypatch.setattr(seed_demo, "_now", lambda: frozen_now)

    out, _ = run("--days", "2")

    # The day both runs cover is a duplicate as far as the first run saw it; the
    # prices are unchanged; everything created is newer than the first run.
    prices = ModelPrice.objects.count()
    assert f"duplicates {seen_that_day + prices} " in out
    new_rows = Log.objects.exclude(request_id__in=seen_ids)
    assert new_rows.exists()
    assert not new_rows.filter(created_at__lte=yesterday).exists()


@pytest.mark.django_db
def test_llm_calls_without_a_cost_are_priced_from_the_price_table(frozen_now):
    run("--days", "2")

    prices = {p.model_name: p for p in ModelPrice.objects.all()}
    consumed = Log.objects.filter(type=2, model_name="gpt-4o")
    assert consumed.exists()
    for row in consumed:
        assert row.cost > 0
        assert row.cost == prices["gpt-4o"].cost_of(row.prompt_tokens, row.completion_tokens)
        assert row.quota > 0


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_nothing_is_dated_in_the_future(settings, zone):
    # UTC+14 and UTC-11: "today" in the reporting zone is a different UTC date.
    settings.STATS_TIME_ZONE = zone
    run("--days", "2")
    now = timezone.now()

    for model in (Log, ToolCall, Message):
        latest = model.objects.order_by("-created_at").values_list("created_at", flat=True).first()
        assert latest is not None and latest <= now
    earliest = Log.objects.order_by("created_at").values_list("created_at", flat=True).first()
    first_day = now.astimezone(ZoneInfo(zone)).date() - timedelta(days=1)
    assert earliest.astimezone(ZoneInfo(zone)).date() == first_day


@pytest.mark.django_db
def test_output_ends_with_a_one_line_summary_and_no_progress_off_a_terminal(frozen_now):
    out, err = run("--days", "2")

    summary = out.strip().splitlines()[-1]
    assert summary.startswith("Demo data: created ")
    for kind in ("llm calls", "tool calls", "messages", "logs", "model prices"):
        assert f"{kind} " in summary
    assert err == ""  # StringIO is not a terminal, so no progress bar


@pytest.mark.django_db
def test_verbosity_zero_prints_nothing(frozen_now):
    out, err = run("--days", "1", "--verbosity", "0")

    assert out == err == ""
    assert ModelPrice.objects.exists()


@pytest.mark.django_db
def test_a_changed_price_is_put_back_and_reported_as_updated(frozen_now):
    ModelPrice.objects.create(model_name="gpt-4o", input_per_million=1, output_per_million=1)

    out, _ = run("--days", "1")

    price = ModelPrice.objects.get(model_name="gpt-4o")
    assert (str(price.input_per_million), str(price.output_per_million)) == ("2.50000000", "10.00000000")
    assert "1 updated" in out


@pytest.mark.parametrize("args", [["--days", "0"], ["--days", "367"], ["--scale", "0"]])
def test_it_refuses_out_of_range_arguments(args):
    with pytest.raises(CommandError):
        call_command("seed_demo", *args, stdout=StringIO(), stderr=StringIO())


# --- the generator alone (no database) ---------------------------------------------


def test_a_day_replays_identically():
    day = date(2025, 3, 14)
    first = seed_demo.DemoDay(day, 1, ZoneInfo("UTC"))
    again = seed_demo.DemoDay(day, 1, ZoneInfo("UTC"))

    for kind in seed_demo.KINDS:
        assert first.records(kind.name, until=FAR_FUTURE) == again.records(kind.name, until=FAR_FUTURE)
    assert first.records("llm_calls", until=FAR_FUTURE)[0]["request_id"] == "demo-llm-20250314-1"


def test_every_generated_record_passes_its_ingest_serializer():
    plans = [seed_demo.DemoDay(date(2025, 1, 1) + timedelta(days=n), 1, ZoneInfo("Asia/Shanghai")) for n in range(7)]
    for kind in seed_demo.KINDS:
        records = [r for plan in plans for r in plan.records(kind.name, until=FAR_FUTURE)]
        assert records
        seed_demo.validated(kind, records)  # raises CommandError on the first invalid one


def test_volume_follows_the_daily_and_weekly_rhythm():
    tz = ZoneInfo("Europe/Berlin")
    start = date(2025, 1, 6)  # a Monday
    by_hour: Counter[int] = Counter()
    weekday_calls = weekend_calls = 0
    for n in range(28):
        day = start + timedelta(days=n)
        calls = seed_demo.DemoDay(day, 1, tz).records("llm_calls", until=FAR_FUTURE)
        by_hour.update(datetime.fromisoformat(r["created_at"]).astimezone(tz).hour for r in calls)
        if day.weekday() >= 5:
            weekend_calls += len(calls)
        else:
            weekday_calls += len(calls)

    night = sum(by_hour[h] for h in range(2, 6))
    afternoon = sum(by_hour[h] for h in range(14, 18))
    assert afternoon > 8 * night
    assert weekend_calls / 8 < 0.75 * (weekday_calls / 20)  # per-day averages


def test_scale_multiplies_volume():
    day = date(2025, 5, 7)
    small = len(seed_demo.DemoDay(day, 1, ZoneInfo("UTC")).records("llm_calls", until=FAR_FUTURE))
    large = len(seed_demo.DemoDay(day, 3, ZoneInfo("UTC")).records("llm_calls", until=FAR_FUTURE))
    assert 2.2 * small < large < 3.8 * small
