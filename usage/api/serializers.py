"""Ingest records of tool calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from logs.api.serializers import MAX_UNIX_SECONDS, UnixSecondsField
from statsite.ingest import (
    BoundedJSONField,
    RecordSerializer,
    TextField,
    TimestampField,
    cost_field,
    count_field,
    username_field,
)
from statsite.periods import last_calendar_days
from statsite.timeparse import parse_instant
from usage.selectors import LLM_STATS_GROUPS, stats_zone


class ToolCallRecordSerializer(RecordSerializer):
    """One tool execution. `tool_name` defaults to `tool_id`."""

    request_id = TextField(max_length=128, required=False, allow_blank=True)
    created_at = TimestampField(required=False, default=timezone.now)
    username = username_field(required=False, allow_blank=True)
    tool_id = TextField(max_length=128)
    tool_name = TextField(max_length=200, required=False, allow_blank=True)
    chat_id = TextField(max_length=128, required=False, allow_blank=True)
    args = BoundedJSONField(required=False)
    result = BoundedJSONField(required=False, allow_null=True)
    success = serializers.BooleanField(required=False, default=True)
    duration_ms = count_field(required=False, allow_null=True)
    cost = cost_field(required=False, allow_null=True)

    def validate_tool_id(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


# --- gateway usage data (/api/data/, /api/data/self) ---------------------------------------

# Without start_timestamp the window reaches this far back from its end (or
# DATA_MAX_RANGE_DAYS, when that is shorter).
DATA_DEFAULT_SPAN = timedelta(days=7)


def _unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class OwnDataParamsSerializer(serializers.Serializer):
    """Parameters of `/api/data/self`. Both bounds are unix seconds and inclusive to the
    second, so the window is `[start, end + 1 s)`; 0 or blank means "not given"."""

    start_timestamp = serializers.IntegerField(
        min_value=0,
        max_value=MAX_UNIX_SECONDS,
        required=False,
        help_text="Unix seconds, inclusive. Default: 7 days before the end (at most DATA_MAX_RANGE_DAYS).",
    )
    end_timestamp = serializers.IntegerField(
        min_value=0,
        max_value=MAX_UNIX_SECONDS,
        required=False,
        help_text="Unix seconds, inclusive (the whole second). Default: now.",
    )

    def validate(self, attrs: dict) -> dict:
        now = timezone.now()
        start, end = attrs.get("start_timestamp") or None, attrs.get("end_timestamp") or None
        if start is not None and end is not None and start > end:
            raise serializers.ValidationError({"end_timestamp": "must not be before start_timestamp."})
        max_days: int = settings.DATA_MAX_RANGE_DAYS
        window_end = _unix(end) + timedelta(seconds=1) if end is not None else now
        if start is None:
            window_start = window_end - min(DATA_DEFAULT_SPAN, timedelta(days=max_days))
        else:
            window_start = _unix(start)
            if window_start > window_end:
                raise serializers.ValidationError(
                    {"start_timestamp": "must not be after end_timestamp (default: now)."}
                )
            # The span between the bounds as written (whole seconds), so a month from one
            # midnight to another fits a 31-day limit despite the inclusive end second.
            last_second = end if end is not None else int(now.timestamp())
            if last_second - start > max_days * 86400:
                raise serializers.ValidationError(
                    {
                        "start_timestamp": f"is more than {max_days} days before end_timestamp; the longest "
                        f"window is {max_days} days (DATA_MAX_RANGE_DAYS)."
                    }
                )
        attrs["start"], attrs["end"] = window_start, window_end
        return attrs


class DataParamsSerializer(OwnDataParamsSerializer):
    """Parameters of `/api/data/`: those of `/api/data/self` and an account filter."""

    username = TextField(
        max_length=150,
        required=False,
        help_text="Only this account's usage (exact match); an unknown name gives an empty list.",
    )


class DataItemSerializer(serializers.Serializer):
    """One model's usage in one UTC hour."""

    model_name = serializers.CharField()
    count = serializers.IntegerField(help_text="Requests (failed ones included).")
    quota = serializers.IntegerField(help_text="Quota consumed (successful calls).")
    token_used = serializers.IntegerField(help_text="Prompt + completion tokens.")
    created_at = UnixSecondsField(help_text="Start of the UTC hour, unix seconds.")
    user_id = serializers.IntegerField(required=False, help_text="Only when `username` is given.")
    username = serializers.CharField(required=False, help_text="Only when `username` is given.")


class OwnDataItemSerializer(DataItemSerializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()


class DataResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    data = DataItemSerializer(many=True)


class OwnDataResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    data = OwnDataItemSerializer(many=True)


# --- bot LLM stats (/llm/stats) ----------------------------------------------------------------

LLM_PERIOD_TYPES = ("daily", "custom", "last_hour", "last_24_hours", "last_7_days", "last_30_days")
# The "last …" periods are rolling windows ending now; `daily` is calendar days.
ROLLING_PERIODS = {
    "last_hour": timedelta(hours=1),
    "last_24_hours": timedelta(hours=24),
    "last_7_days": timedelta(days=7),
    "last_30_days": timedelta(days=30),
}
# About ten years: enough for any report, and far from any datetime overflow.
LLM_STATS_MAX_DAYS = 3660
# Custom bounds outside these years are refused rather than risking overflow at the edges.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(3000, 1, 1, tzinfo=UTC)
CUSTOM_NEEDS_BOTH = "自定义时间段必须提供开始和结束时间"


def _choice_errors(choices) -> dict[str, str]:
    return {"invalid_choice": f'"{{input}}" is not one of {", ".join(choices)}.'}


class InstantTextField(TextField):
    """An ISO 8601 date or date-time; without an offset it is in TIME_ZONE."""

    def run_validation(self, data=serializers.empty) -> datetime:
        # The text is checked first (length, NUL characters), then read as an instant.
        text = super().run_validation(data)
        try:
            moment = parse_instant(text)
        except (ValueError, OverflowError) as exc:
            raise serializers.ValidationError(str(exc)) from None
        if not EARLIEST_INSTANT <= moment < LATEST_INSTANT:
            raise serializers.ValidationError("must be between 1970-01-01 and 2999-12-31.")
        return moment


class LLMStatsParamsSerializer(serializers.Serializer):
    """Parameters of `/llm/stats`. Every parameter given is checked, even one that the
    chosen period does not use."""

    period_type = serializers.ChoiceField(
        choices=LLM_PERIOD_TYPES,
        default="daily",
        error_messages=_choice_errors(LLM_PERIOD_TYPES),
        help_text="daily: the last `days` calendar days in STATS_TIME_ZONE, today included, up to now; "
        "custom: [start_time_str, end_time_str); last_hour, last_24_hours, last_7_days, last_30_days: "
        "that long up to now.",
    )
    days = serializers.IntegerField(
        min_value=1,
        max_value=LLM_STATS_MAX_DAYS,
        default=1,
        help_text="Calendar days for period_type=daily (today counts as one).",
    )
    start_time_str = InstantTextField(
        max_length=64,
        required=False,
        help_text="ISO 8601, required for period_type=custom (inclusive); without an offset, TIME_ZONE.",
    )
    end_time_str = InstantTextField(
        max_length=64,
        required=False,
        help_text="ISO 8601, required for period_type=custom (exclusive); without an offset, TIME_ZONE.",
    )
    group_by = serializers.ChoiceField(
        choices=tuple(LLM_STATS_GROUPS),
        default="model",
        error_messages=_choice_errors(LLM_STATS_GROUPS),
        help_text="model: model name; module: the calling module; user: the account (its username); "
        "type: the request type. Calls that do not say are grouped as `unknown`.",
    )

    def validate(self, attrs: dict) -> dict:
        now = timezone.now()
        period = attrs["period_type"]
        if period == "custom":
            missing = {
                name: f"is required when period_type is custom ({CUSTOM_NEEDS_BOTH})."
                for name in ("start_time_str", "end_time_str")
                if name not in attrs
            }
            if missing:
                raise serializers.ValidationError(missing)
            start, end = attrs["start_time_str"], attrs["end_time_str"]
            if end < start:
                raise serializers.ValidationError({"end_time_str": "must not be before start_time_str."})
        elif period == "daily":
            start, end = last_calendar_days(attrs["days"], tz=stats_zone(), now=now)
        else:
            start, end = now - ROLLING_PERIODS[period], now
        attrs["start"], attrs["end"] = start, end
        return attrs


@extend_schema_field(OpenApiTypes.DATETIME)
class ZonedInstantField(serializers.Field):
    """A datetime as ISO 8601 in STATS_TIME_ZONE, with its offset."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: datetime) -> str:
        return value.astimezone(stats_zone()).isoformat()


def cost_number(value: Any) -> float:
    """A cost as a JSON number rounded to 6 decimals."""
    exact = value if isinstance(value, Decimal) else Decimal(str(value))
    return float(exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


@extend_schema_field(OpenApiTypes.DOUBLE)
class CostNumberField(serializers.Field):
    """A cost as a JSON number rounded to 6 decimals."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> float:
        return cost_number(value)


class LLMStatsPeriodSerializer(serializers.Serializer):
    start = ZonedInstantField(help_text="Start of the window (inclusive), ISO 8601 in STATS_TIME_ZONE.")
    end = ZonedInstantField(help_text="End of the window (exclusive), ISO 8601 in STATS_TIME_ZONE.")


class LLMStatsGroupSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    cost = CostNumberField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class LLMStatsSerializer(serializers.Serializer):
    period = LLMStatsPeriodSerializer()
    total_requests = serializers.IntegerField()
    total_cost = CostNumberField()
    details_by_group = serializers.DictField(
        child=LLMStatsGroupSerializer(), help_text="Group name → its usage; most requests first."
    )

    def to_representation(self, instance: dict) -> dict:
        # The groups (a thousand accounts, say) are plain numbers: written directly
        # rather than through a field per number.
        groups = instance["details_by_group"]
        data = super().to_representation({**instance, "details_by_group": {}})
        data["details_by_group"] = {name: {**group, "cost": cost_number(group["cost"])} for name, group in groups.items()}
        return data


# --- console stats (/api/stats/models, /tools, /channels) and tool metering (/agent/stats) ---

import re  # noqa: E402
from datetime import date  # noqa: E402

from logs.api.serializers import IsoUtcField  # noqa: E402
from statsite.periods import CONSOLE_PERIODS  # noqa: E402
from usage.selectors import METERING_GROUPS  # noqa: E402


class ConsolePeriodParamsSerializer(serializers.Serializer):
    period = serializers.ChoiceField(
        choices=list(CONSOLE_PERIODS),
        required=False,
        default="all",
        error_messages={"invalid_choice": 'must be one of day, week, month, all; got "{input}".'},
        help_text=(
            "day: today; week: the last 7 calendar days; month: the last 30 calendar days (today "
            "included, days in STATS_TIME_ZONE); all: everything. Default all."
        ),
    )


class ConsoleModelStatSerializer(serializers.Serializer):
    model = serializers.CharField()
    requests = serializers.IntegerField()
    tokens = serializers.IntegerField(help_text="Prompt + completion tokens.")
    avgLatency = serializers.IntegerField(help_text="Mean latency in ms of the calls that reported one; 0 when none.")
    errors = serializers.IntegerField(help_text="Failed calls.")
    p95Latency = serializers.IntegerField(
        allow_null=True, help_text="95th percentile latency in ms, estimated from a histogram; null when none."
    )


class ConsoleModelStatsSerializer(serializers.Serializer):
    models = ConsoleModelStatSerializer(many=True, help_text="Most requested first, then by model.")


class ConsoleToolStatSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The tool's name.")
    calls = serializers.IntegerField()
    avgDuration = serializers.IntegerField(help_text="Mean duration in ms of the calls that reported one; 0 when none.")
    successRate = serializers.FloatField(help_text="Share of successful calls, a fraction from 0 to 1 (4 places).")


class ConsoleToolStatsSerializer(serializers.Serializer):
    tools = ConsoleToolStatSerializer(many=True, help_text="Most called first, then by name.")


class ConsoleChannelStatSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The channel's id (the gateway's channel number).")
    name = serializers.CharField()
    status = serializers.CharField(help_text='"active" (enabled) or "disabled".')
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    avgLatency = serializers.IntegerField(help_text="Mean latency in ms of the calls that reported one; 0 when none.")
    lastUsed = IsoUtcField(allow_null=True, help_text="Newest call in the period (ISO 8601 UTC); null when none.")


class ConsoleChannelStatsSerializer(serializers.Serializer):
    channels = ConsoleChannelStatSerializer(many=True, help_text="Every channel; busiest first, then by id.")


class ConsoleModelStatsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = ConsoleModelStatsSerializer()


class ConsoleToolStatsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = ConsoleToolStatsSerializer()


class ConsoleChannelStatsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = ConsoleChannelStatsSerializer()


class ConsoleStatsErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always false.")
    error = serializers.CharField(help_text='What was wrong, naming the parameter: "period: must be one of …".')


# The tool metering document's date format, written out in full (no week dates, no times).
METERING_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Dates a window may start or end on: wide enough for any real question, narrow enough
# that local midnights stay representable in every time zone.
METERING_EARLIEST_DAY = date(1970, 1, 1)
METERING_LATEST_DAY = date(2999, 12, 31)
METERING_MAX_DAYS = 90
# Error codes that the tool metering view turns into the document's status numbers.
BAD_DATE = "bad_date"
RANGE_TOO_LONG = "range_too_long"


@extend_schema_field(OpenApiTypes.DATE)
class MeteringDateField(serializers.Field):
    """A calendar day written YYYY-MM-DD; "" counts as not given."""

    default_error_messages = {BAD_DATE: 'must be a date written YYYY-MM-DD, e.g. "2026-06-01".'}

    def to_internal_value(self, data: Any) -> date | None:
        if data == "":
            return None
        if not isinstance(data, str) or not METERING_DATE.fullmatch(data):
            self.fail(BAD_DATE)
        try:
            day = date.fromisoformat(data)
        except ValueError:
            raise serializers.ValidationError(f'"{data}" is not a day of the calendar.', code=BAD_DATE) from None
        if not METERING_EARLIEST_DAY <= day <= METERING_LATEST_DAY:
            raise serializers.ValidationError(
                f"must be between {METERING_EARLIEST_DAY} and {METERING_LATEST_DAY}.", code=BAD_DATE
            )
        return day

    def to_representation(self, value: date) -> str:
        return value.isoformat()


class AgentStatsParamsSerializer(serializers.Serializer):
    """The JSON body of `POST /agent/stats`. Every field may be left out (or be null or "")."""

    # The default dates come from context["today"]: the current day in STATS_TIME_ZONE.

    start_date = MeteringDateField(
        required=False, allow_null=True, help_text="First day (YYYY-MM-DD, in STATS_TIME_ZONE). Default today."
    )
    end_date = MeteringDateField(
        required=False,
        allow_null=True,
        help_text=f"Last day, inclusive (YYYY-MM-DD). Default today. At most {METERING_MAX_DAYS} days in all.",
    )
    tool_id = TextField(
        max_length=128, required=False, allow_null=True, allow_blank=True, help_text="Only this tool. Default all."
    )
    group_by = serializers.ChoiceField(
        choices=list(METERING_GROUPS),
        required=False,
        allow_null=True,
        allow_blank=True,
        error_messages={"invalid_choice": 'must be one of day, hour, tool; got "{input}".'},
        help_text=(
            "by_date per day (day, the default) or per hour (hour: labels YYYY-MM-DD HH:MM, local "
            "time); tool answers as day does (by_tool, most called first, is in every answer)."
        ),
    )

    def validate(self, attrs: dict) -> dict:
        today: date = self.context["today"]
        start = attrs.get("start_date") or today
        end = attrs.get("end_date") or today
        if end < start:
            raise serializers.ValidationError({"end_date": f"must not be before start_date ({start})."}, code=BAD_DATE)
        if (end - start).days + 1 > METERING_MAX_DAYS:
            raise serializers.ValidationError(
                {"end_date": f"the range may span at most {METERING_MAX_DAYS} days; split longer ones."},
                code=RANGE_TOO_LONG,
            )
        return {
            "start_date": start,
            "end_date": end,
            "tool_id": attrs.get("tool_id") or None,
            "group_by": attrs.get("group_by") or "day",
        }


class AgentStatsPeriodSerializer(serializers.Serializer):
    start = serializers.DateField(help_text="start_date as asked.")
    end = serializers.DateField(help_text="end_date as asked.")


class AgentStatsSummarySerializer(serializers.Serializer):
    total_calls = serializers.IntegerField()
    success_calls = serializers.IntegerField()
    failed_calls = serializers.IntegerField()
    success_rate = serializers.FloatField(help_text="success_calls / total_calls, 0 to 1 (4 places); 0 without calls.")
    total_cost = serializers.FloatField(help_text="Sum of the calls' cost, 2 places.")
    period = AgentStatsPeriodSerializer()


class AgentStatsToolSerializer(serializers.Serializer):
    tool_id = serializers.CharField()
    tool_name = serializers.CharField()
    calls = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField()
    cost = serializers.FloatField(help_text="2 places.")


class AgentStatsBucketSerializer(serializers.Serializer):
    date = serializers.CharField(
        help_text="YYYY-MM-DD; with group_by=hour, YYYY-MM-DD HH:MM (local start of the hour)."
    )
    calls = serializers.IntegerField()
    success = serializers.IntegerField()
    cost = serializers.FloatField(help_text="2 places.")


class AgentStatsResultSerializer(serializers.Serializer):
    summary = AgentStatsSummarySerializer()
    by_tool = AgentStatsToolSerializer(many=True, help_text="Most called first, then by tool_id.")
    by_date = AgentStatsBucketSerializer(many=True, help_text="Every day (or hour) of the range, zeros included.")


class AgentStatsResponseSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="0.")
    msg = serializers.CharField(help_text='"ok".')
    result = AgentStatsResultSerializer()
    request_id = serializers.CharField(help_text="req_…, unique per answer.")


class AgentStatsErrorSerializer(serializers.Serializer):
    status = serializers.IntegerField(
        help_text=(
            "101 no or unknown appkey (or not an account's); 203 bad date, or end_date before start_date; "
            f"204 range over {METERING_MAX_DAYS} days; 201 any other bad parameter or body; 415 not JSON."
        )
    )
    msg = serializers.CharField(help_text="What was wrong, naming the parameter.")
    result = serializers.JSONField(allow_null=True, help_text="Always null.")
    request_id = serializers.CharField(help_text="req_…")
