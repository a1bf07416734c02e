"""Usage endpoints."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from logs.api.pagination import query_params, validated
from logs.api.serializers import GatewayLogErrorSerializer
from statsite.api.schema import DetailErrorSerializer, ingest_schema
from statsite.dialects import BARE, GATEWAY
from statsite.ingest import BatchIngestView
from statsite.permissions import IsAccount, IsAdminAccount, IsService
from usage.api.serializers import (
    DataParamsSerializer,
    DataResponseSerializer,
    LLMStatsParamsSerializer,
    LLMStatsSerializer,
    OwnDataParamsSerializer,
    OwnDataResponseSerializer,
    ToolCallRecordSerializer,
)
from usage.selectors import ModelHourUsage, llm_stats, usage_by_model_hour
from usage.services import record_tool_calls


@ingest_schema("ingest_tool_calls", "Record tool calls", ToolCallRecordSerializer)
class ToolCallIngestView(BatchIngestView):
    record_serializer_class = ToolCallRecordSerializer

    def store(self, records):
        return record_tool_calls(records)


# --- gateway usage data (/api/data/, /api/data/self) ------------------------------------------

DATA_TAG = "gateway usage data"
DATA_ERRORS = {code: GatewayLogErrorSerializer for code in (400, 401, 403)}
DATA_DESCRIPTION = (
    "Requests, quota and tokens per model and UTC hour (`created_at`: the hour's start, unix seconds), "
    "ordered by hour, then model. `start_timestamp` and `end_timestamp` are unix seconds, both inclusive; "
    "without `end_timestamp` the window ends now, without `start_timestamp` it begins 7 days before its "
    "end. A window longer than DATA_MAX_RANGE_DAYS days (default 31), a start after the end, or a "
    "negative or non-numeric value answers 400."
)


def own_usage(account: AbstractBaseUser, start: datetime, end: datetime) -> list[ModelHourUsage]:
    """ACCOUNT's rows, each naming the account as the gateway data document shows them."""
    return usage_by_model_hour(start=start, end=end, account=account)


class DataView(APIView):
    """`GET /api/data/`: the whole installation's usage per model and hour (admin),
    or one account's with `username` (an unknown one: an empty list)."""

    dialect = GATEWAY
    permission_classes = [IsAdminAccount]

    @extend_schema(
        operation_id="data_list",
        tags=[DATA_TAG],
        summary="Usage of every account per model and hour (admin)",
        description=DATA_DESCRIPTION + " With `username`, only that account's usage, each item naming it.",
        parameters=[DataParamsSerializer],
        responses={200: DataResponseSerializer, **DATA_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        params = validated(DataParamsSerializer, query_params(request, tuple(DataParamsSerializer().fields)))
        username = params.get("username")
        if not username:
            return self.dialect.ok(usage_by_model_hour(start=params["start"], end=params["end"]))
        account = get_user_model().objects.filter(username=username).first()
        if account is None:
            return self.dialect.ok([])
        return self.dialect.ok(own_usage(account, params["start"], params["end"]))


class OwnDataView(APIView):
    """`GET /api/data/self`: the caller's own usage per model and hour."""

    dialect = GATEWAY
    permission_classes = [IsAccount]

    @extend_schema(
        operation_id="data_self",
        tags=[DATA_TAG],
        summary="My usage per model and hour",
        description=DATA_DESCRIPTION,
        parameters=[OwnDataParamsSerializer],
        responses={200: OwnDataResponseSerializer, **DATA_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        params = validated(OwnDataParamsSerializer, query_params(request, tuple(OwnDataParamsSerializer().fields)))
        return self.dialect.ok(own_usage(request.user, params["start"], params["end"]))


# --- bot LLM stats (/llm/stats) ----------------------------------------------------------------

BOT_STATS_TAG = "bot stats"
BOT_STATS_ERRORS = {code: DetailErrorSerializer for code in (400, 401, 403)}


class LLMStatsView(APIView):
    """`GET /llm/stats`: LLM requests, cost and tokens over a period, by model, module,
    user or request type (a service key; accounts get 403)."""

    dialect = BARE
    permission_classes = [IsService]

    @extend_schema(
        operation_id="llm_stats",
        tags=[BOT_STATS_TAG],
        summary="LLM usage over a period, grouped by model, module, user or type",
        description=(
            "Windows are half-open `[start, end)`. `daily`: the last `days` calendar days in "
            "STATS_TIME_ZONE up to now; `custom`: from `start_time_str` to `end_time_str` (both required); "
            "the `last_…` periods: that long up to now. Costs are rounded to 6 decimals. A missing or "
            "bad parameter answers 400 `{\"detail\": \"<parameter>: <why>\"}`."
        ),
        parameters=[LLMStatsParamsSerializer],
        responses={200: LLMStatsSerializer, **BOT_STATS_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        names = tuple(LLMStatsParamsSerializer().fields)
        params = validated(LLMStatsParamsSerializer, query_params(request, names))
        stats = llm_stats(start=params["start"], end=params["end"], group_by=params["group_by"])
        body = {"period": {"start": params["start"], "end": params["end"]}, **stats}
        return self.dialect.ok(LLMStatsSerializer(body).data)


# --- console stats (/api/stats/models, /tools, /channels) and tool metering (/agent/stats) ---

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from django.utils import timezone  # noqa: E402
from drf_spectacular.utils import OpenApiExample, extend_schema_view  # noqa: E402
from rest_framework import serializers  # noqa: E402
from rest_framework.exceptions import ValidationError  # noqa: E402

from statsite.dialects import CONSOLE, METERING  # noqa: E402
from statsite.periods import console_period  # noqa: E402
from statsite.permissions import IsAdminOrService  # noqa: E402
from usage.api.serializers import (  # noqa: E402
    BAD_DATE,
    RANGE_TOO_LONG,
    AgentStatsErrorSerializer,
    AgentStatsParamsSerializer,
    AgentStatsResponseSerializer,
    ConsoleChannelStatsResponseSerializer,
    ConsoleChannelStatsSerializer,
    ConsoleModelStatsResponseSerializer,
    ConsoleModelStatsSerializer,
    ConsolePeriodParamsSerializer,
    ConsoleStatsErrorSerializer,
    ConsoleToolStatsResponseSerializer,
    ConsoleToolStatsSerializer,
)
from usage.selectors import (  # noqa: E402
    console_channel_stats,
    console_model_stats,
    console_tool_stats,
    stats_zone,
    tool_metering,
)

CONSOLE_STATS_TAG = "console stats"
CONSOLE_STATS_ERRORS = {code: ConsoleStatsErrorSerializer for code in (400, 401, 403)}
CONSOLE_STATS_DESCRIPTION = (
    "For a service key (`X-API-Key` or Bearer) or an administrator's token; other accounts get 403. "
    "`period` (day, week, month, all; default all) picks the window, days drawn in STATS_TIME_ZONE; "
    'any other value answers 400 `{"success": false, "error": "period: …"}`.'
)


def console_stats_schema(operation_id: str, summary: str, description: str, ok: type[serializers.Serializer]):
    return extend_schema_view(
        get=extend_schema(
            operation_id=operation_id,
            tags=[CONSOLE_STATS_TAG],
            summary=summary,
            description=f"{description} {CONSOLE_STATS_DESCRIPTION}",
            parameters=[ConsolePeriodParamsSerializer],
            responses={200: ok, **CONSOLE_STATS_ERRORS},
        )
    )


class ConsoleStatsView(APIView):
    """A bot console stats endpoint: a period's window, one selector, one list under `key`."""

    dialect = CONSOLE
    permission_classes = [IsAdminOrService]
    key: str
    selector: Callable[..., list[Any]]
    data_serializer_class: type[serializers.Serializer]

    def get(self, request: Request, *args, **kwargs) -> Response:
        params = validated(ConsolePeriodParamsSerializer, query_params(request, ("period",)))
        start, end = console_period(params["period"], tz=stats_zone())
        rows = self.selector(start=start, end=end)
        return self.dialect.ok(self.data_serializer_class({self.key: rows}).data)


@console_stats_schema(
    "console_stats_models",
    "LLM usage per model",
    "Requests, tokens (prompt + completion), errors, mean and 95th percentile latency (ms) per model; "
    "most requested first.",
    ConsoleModelStatsResponseSerializer,
)
class ConsoleModelStatsView(ConsoleStatsView):
    """`GET /api/stats/models?period=`."""

    key = "models"
    selector = staticmethod(console_model_stats)
    data_serializer_class = ConsoleModelStatsSerializer


@console_stats_schema(
    "console_stats_tools",
    "Tool usage per tool",
    "Calls, mean duration (ms) and success rate (a 0..1 fraction) per tool; most called first.",
    ConsoleToolStatsResponseSerializer,
)
class ConsoleToolStatsView(ConsoleStatsView):
    """`GET /api/stats/tools?period=`."""

    key = "tools"
    selector = staticmethod(console_tool_stats)
    data_serializer_class = ConsoleToolStatsSerializer


@console_stats_schema(
    "console_stats_channels",
    "Channels and their traffic",
    "Every channel (integer id, name, active or disabled) with its requests, errors, mean latency (ms) and "
    "newest call in the period (null when none); calls through no channel are not listed. Busiest first.",
    ConsoleChannelStatsResponseSerializer,
)
class ConsoleChannelStatsView(ConsoleStatsView):
    """`GET /api/stats/channels?period=`."""

    key = "channels"
    selector = staticmethod(console_channel_stats)
    data_serializer_class = ConsoleChannelStatsSerializer


class MeteringParamsError(ValidationError):
    """A bad body of `/agent/stats`, carrying the tool metering document's status number."""

    def __init__(self, detail: Any, metering_status: int):
        super().__init__(detail)
        self.metering_status = metering_status


def _codes(detail: Any) -> set[str]:
    if isinstance(detail, dict):
        return set().union(*(_codes(value) for value in detail.values()))
    if isinstance(detail, list):
        return set().union(*(_codes(value) for value in detail))
    return {str(detail)}


def metering_status(errors: dict) -> int:
    """The document's number for a refused body: 204 a range too long, 203 a bad date
    (format, calendar, or end before start; it wins over other errors), 201 the rest."""
    codes = _codes(ValidationError(errors).get_codes())
    if RANGE_TOO_LONG in codes:
        return 204
    if BAD_DATE in codes:
        return 203
    return 201


AGENT_STATS_EXAMPLES = [
    OpenApiExample("today", value={}, request_only=True),
    OpenApiExample("a range", value={"start_date": "2026-06-01", "end_date": "2026-06-03"}, request_only=True),
    OpenApiExample(
        "one tool",
        value={"tool_id": "shouji_query", "start_date": "2026-06-01", "end_date": "2026-06-03"},
        request_only=True,
    ),
    OpenApiExample(
        "per hour", value={"start_date": "2026-06-03", "end_date": "2026-06-03", "group_by": "hour"}, request_only=True
    ),
]


class AgentStatsView(APIView):
    """`POST /agent/stats`: the caller's own tool calls over whole days (tool metering)."""

    dialect = METERING
    permission_classes = [IsAccount]

    @extend_schema(
        operation_id="agent_stats",
        tags=["tool metering"],
        summary="My tool calls: summary, per tool and per day or hour",
        description=(
            "`Authorization: Bearer <appkey>`, the appkey being a personal access token: the answer counts "
            "that account's own tool calls. Days are calendar days in STATS_TIME_ZONE, both ends inclusive "
            "(from local midnight of `start_date` to local midnight after `end_date`, up to now). Errors keep "
            'the envelope: `{"status": N, "msg": "…", "result": null, "request_id": "req_…"}` with 101 '
            "(HTTP 401/403) for a missing or unknown appkey or a service key, 203 (HTTP 400) for a bad date or "
            "an end before the start, 204 (HTTP 400) for more than 90 days, 201 (HTTP 400) for any other bad "
            "parameter or a body that is not a JSON object."
        ),
        request=AgentStatsParamsSerializer,
        examples=AGENT_STATS_EXAMPLES,
        # Only a personal access token is an appkey: service keys and sessions are refused.
        auth=[{"Bearer": []}],
        responses={200: AgentStatsResponseSerializer, **{c: AgentStatsErrorSerializer for c in (400, 401, 403, 415)}},
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise MeteringParamsError({"body": "must be a JSON object, e.g. {}."}, 201)
        tz = stats_zone()
        now = timezone.now()
        params = AgentStatsParamsSerializer(data=body, context={"today": now.astimezone(tz).date()})
        if not params.is_valid():
            raise MeteringParamsError(params.errors, metering_status(params.errors))
        found = params.validated_data
        result = tool_metering(
            user_id=request.user.pk,
            start_day=found["start_date"],
            end_day=found["end_date"],
            tool_id=found["tool_id"],
            group_by=found["group_by"],
            now=now,
            tz=tz,
        )
        return self.dialect.ok(result)
