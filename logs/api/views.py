"""Log endpoints: ingest, the gateway log API (`/api/log/…`, envelope
`{"success", "message", "data"}`) and the console log API (`/api/logs…`,
envelope `{"success": true, "data"}`).

Lists are generic views: a queryset ordered newest first, a FilterSet for the
filters and a pagination class for the page parameters and the envelope. The
stats endpoints validate their parameters with a serializer and call one selector.
"""

from __future__ import annotations

from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins, viewsets
from rest_framework.authentication import get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from logs.api.filters import (
    ErrorLogFilterSet,
    LogFilterSet,
    LogSearchFilterSet,
    OwnLogFilterSet,
    SystemLogFilterSet,
    ToolLogFilterSet,
    criteria_from,
    from_unix,
)
from logs.api.pagination import (
    ConsoleErrorPagination,
    ConsolePagination,
    GatewayListPagination,
    GatewayPagination,
    query_params,
    validated,
)
from logs.api.serializers import (
    ConsoleErrorLogSerializer,
    ConsoleLogErrorSerializer,
    ConsoleLogSerializer,
    ConsoleToolLogSerializer,
    GatewayLogErrorSerializer,
    GatewayLogListResponseSerializer,
    GatewayLogSerializer,
    LLMCallRecordSerializer,
    LogPurgeParamsSerializer,
    LogPurgeResponseSerializer,
    LogRecordSerializer,
    LogStatParamsSerializer,
    LogStatResponseSerializer,
    LogTokenParamsSerializer,
    OwnGatewayLogListResponseSerializer,
    OwnGatewayLogSerializer,
    OwnLogStatParamsSerializer,
)
from logs.api.throttles import SettingsScopedRateThrottle
from logs.models import Log
from logs.querysets import LogQuerySet
from logs.selectors import log_stat
from logs.services import purge, record_llm_calls, record_logs
from statsite import credentials
from statsite.api.schema import ingest_schema
from statsite.dialects import CONSOLE, GATEWAY
from statsite.ingest import BatchIngestView
from statsite.permissions import AllowAny, IsAccount, IsAdminAccount, IsAdminOrService
from usage.models import RelayKey, ToolCall

LLM_CALL_EXAMPLE = OpenApiExample(
    "one call",
    value={
        "request_id": "req-1",
        "username": "alice",
        "model_name": "gpt-4o",
        "prompt_tokens": 120,
        "completion_tokens": 40,
        "latency_ms": 850,
    },
    request_only=True,
)


@ingest_schema("ingest_llm_calls", "Record LLM calls", LLMCallRecordSerializer, examples=[LLM_CALL_EXAMPLE])
class LLMCallIngestView(BatchIngestView):
    record_serializer_class = LLMCallRecordSerializer

    def store(self, records):
        return record_llm_calls(records)


@ingest_schema("ingest_logs", "Record top-up, manage, error and system logs", LogRecordSerializer)
class LogIngestView(BatchIngestView):
    record_serializer_class = LogRecordSerializer

    def store(self, records):
        return record_logs(records)


# --- the gateway log API -----------------------------------------------------------------

GATEWAY_TAG = "gateway logs"
GATEWAY_ERRORS = {code: GatewayLogErrorSerializer for code in (400, 401, 403)}
SEARCH_ERRORS = {code: GatewayLogErrorSerializer for code in (400, 401, 403, 429)}


def gateway_list_schema(operation_id: str, summary: str, ok, errors=GATEWAY_ERRORS):
    return extend_schema(operation_id=operation_id, tags=[GATEWAY_TAG], summary=summary, responses={200: ok, **errors})


class GatewayLogList(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Base of the gateway log lists: newest first (created_at desc, id desc)."""

    dialect = GATEWAY
    queryset = Log.objects.newest_first()
    filter_backends = [DjangoFilterBackend]


class OwnLogs:
    """Narrows a list to the caller's own rows: a user never sees another account's."""

    def get_queryset(self) -> LogQuerySet:
        return super().get_queryset().for_user(self.request.user)

    def criteria_owner(self):
        return self.request.user


class CountedLogList(GatewayLogList):
    """A paged gateway log list with its exact total: the filters' criteria are kept
    (`log_criteria`) for the paginator, which counts and finds the page from the rollups."""

    pagination_class = GatewayPagination

    def criteria_owner(self):
        return None

    def filter_queryset(self, queryset: LogQuerySet) -> LogQuerySet:
        filterset = DjangoFilterBackend().get_filterset(self.request, queryset, self)
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        self.log_criteria = filterset.criteria(owner=self.criteria_owner())
        return filterset.qs


@extend_schema_view(
    list=gateway_list_schema("log_list", "All logs, newest first (admin)", GatewayLogSerializer(many=True))
)
class LogViewSet(CountedLogList):
    """`GET /api/log/`: every account's logs, paged; `DELETE /api/log/`: purge by age."""

    permission_classes = [IsAdminAccount]
    queryset = Log.objects.select_related("channel").newest_first()
    serializer_class = GatewayLogSerializer
    filterset_class = LogFilterSet
    purge_batch_size = 5000

    @extend_schema(
        operation_id="log_purge",
        tags=[GATEWAY_TAG],
        summary="Delete every log created before a time (admin)",
        description=(
            "Deletes in batches, each in its own short transaction, so ingest and reads go on "
            'meanwhile. A missing or invalid `target_timestamp` answers 400 "target timestamp is required".'
        ),
        parameters=[LogPurgeParamsSerializer],
        responses={200: LogPurgeResponseSerializer, **GATEWAY_ERRORS},
    )
    def purge(self, request: Request, *args, **kwargs) -> Response:
        try:
            params = validated(LogPurgeParamsSerializer, query_params(request, ("target_timestamp",)))
        except ValidationError:
            # The gateway log document's own message for a missing or bad timestamp.
            raise ValidationError("target timestamp is required") from None
        deleted = purge("logs", before=from_unix(params["target_timestamp"]), batch_size=self.purge_batch_size)
        return self.dialect.ok(deleted)


@extend_schema_view(
    list=gateway_list_schema("log_self_list", "My logs, newest first", OwnGatewayLogSerializer(many=True))
)
class OwnLogViewSet(OwnLogs, CountedLogList):
    """`GET /api/log/self`: the caller's own logs, paged."""

    permission_classes = [IsAccount]
    serializer_class = OwnGatewayLogSerializer
    filterset_class = OwnLogFilterSet


class LogSearchBase(GatewayLogList):
    filterset_class = LogSearchFilterSet
    pagination_class = GatewayListPagination
    # A content search may still walk many rows (a short keyword, SQLite, one's own
    # search for what only others' rows hold; logs migration 0004): rationed per account.
    throttle_classes = [SettingsScopedRateThrottle]
    throttle_scope = "log_search"


@extend_schema_view(
    list=gateway_list_schema(
        "log_search", "Search all logs by type or content (admin)", GatewayLogListResponseSerializer, SEARCH_ERRORS
    )
)
class LogSearchViewSet(LogSearchBase):
    """`GET /api/log/search?keyword=`: every account's matching logs, a page as a plain list."""

    permission_classes = [IsAdminAccount]
    queryset = Log.objects.select_related("channel").newest_first()
    serializer_class = GatewayLogSerializer


@extend_schema_view(
    list=gateway_list_schema(
        "log_self_search", "Search my logs by type or content", OwnGatewayLogListResponseSerializer, SEARCH_ERRORS
    )
)
class OwnLogSearchViewSet(OwnLogs, LogSearchBase):
    """`GET /api/log/self/search?keyword=`: the caller's matching logs."""

    permission_classes = [IsAccount]
    serializer_class = OwnGatewayLogSerializer


class LogStatView(APIView):
    """`GET /api/log/stat`: quota of the consume rows in the window, and the live
    rpm/tpm (last 60 seconds, whatever the window) under the same filters.
    A `type` other than 2 leaves no consume rows, hence zeros."""

    dialect = GATEWAY
    permission_classes = [IsAdminAccount]
    params_class: type[Serializer] = LogStatParamsSerializer

    def criteria_owner(self):
        return None

    @extend_schema(
        operation_id="log_stat",
        tags=[GATEWAY_TAG],
        summary="Quota, rpm and tpm of all logs (admin)",
        parameters=[LogStatParamsSerializer],
        responses={200: LogStatResponseSerializer, **GATEWAY_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        params = validated(self.params_class, query_params(request, tuple(self.params_class().fields)))
        criteria = criteria_from(params, owner=self.criteria_owner())
        return self.dialect.ok(log_stat(criteria=criteria, now=timezone.now()))


class OwnLogStatView(LogStatView):
    """`GET /api/log/self/stat`: the same over the caller's own rows."""

    permission_classes = [IsAccount]
    params_class = OwnLogStatParamsSerializer

    def criteria_owner(self):
        return self.request.user

    @extend_schema(
        operation_id="log_self_stat",
        tags=[GATEWAY_TAG],
        summary="Quota, rpm and tpm of my logs",
        parameters=[OwnLogStatParamsSerializer],
        responses={200: LogStatResponseSerializer, **GATEWAY_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


@extend_schema_view(
    get=extend_schema(
        operation_id="log_token",
        tags=[GATEWAY_TAG],
        summary="The logs of a relay key (public, cross-origin)",
        description=(
            "The key comes as `key` (with or without `sk-`) or as `Authorization: Bearer sk-…`. "
            "An unknown or disabled key answers 401. Paged with `p`/`page_size`: read until a short page."
        ),
        auth=[],
        parameters=[
            LogTokenParamsSerializer,
            OpenApiParameter(
                "Authorization", OpenApiTypes.STR, OpenApiParameter.HEADER, description="Bearer sk-… (instead of key)"
            ),
        ],
        responses={200: OwnGatewayLogListResponseSerializer, **SEARCH_ERRORS},
    )
)
class LogTokenView(generics.ListAPIView):
    """`GET /api/log/token?key=sk-…`: what a relay key's holder may see of its logs."""

    dialect = GATEWAY
    # The relay key is this endpoint's only credential; account tokens mean nothing here.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [SettingsScopedRateThrottle]
    throttle_scope = "log_token"
    queryset = Log.objects.newest_first()
    serializer_class = OwnGatewayLogSerializer
    pagination_class = GatewayListPagination
    filter_backends: list = []

    def get_queryset(self) -> LogQuerySet:
        return super().get_queryset().of_relay_key(self.relay_key())

    def relay_key(self) -> RelayKey:
        raw = validated(LogTokenParamsSerializer, query_params(self.request, ("key",))).get("key")
        raw = raw or self.bearer_key()
        if not raw:
            raise ValidationError({"key": "This parameter is required (or send Authorization: Bearer sk-…)."})
        digest = credentials.digest(credentials.canonical_relay_key(raw))
        key = RelayKey.objects.filter(key_hash=digest).first()
        if key is None or key.status == RelayKey.Status.DISABLED:
            raise AuthenticationFailed("Unknown or disabled key.")
        return key

    def bearer_key(self) -> str:
        parts = get_authorization_header(self.request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            return ""
        try:
            return parts[1].decode("utf-8")
        except UnicodeError:
            return ""

    def get_authenticate_header(self, request: Request) -> str:
        # Makes a refused key a 401 (DRF answers 403 when no scheme is announced).
        return 'Bearer realm="relay key"'


# --- the console log API ---------------------------------------------------------------------

CONSOLE_TAG = "console logs"
CONSOLE_ERRORS = {code: ConsoleLogErrorSerializer for code in (400, 401, 403)}


def console_list_schema(operation_id: str, summary: str, item):
    return extend_schema_view(
        get=extend_schema(
            operation_id=operation_id,
            tags=[CONSOLE_TAG],
            summary=summary,
            responses={200: item(many=True), **CONSOLE_ERRORS},
        )
    )


class ConsoleLogList(generics.ListAPIView):
    """Base of the console log lists: the newest `limit` rows, `before` pages back."""

    dialect = CONSOLE
    permission_classes = [IsAdminOrService]
    filter_backends = [DjangoFilterBackend]
    pagination_class = ConsolePagination


@console_list_schema("console_logs", "System and error logs, newest first", ConsoleLogSerializer)
class SystemLogListView(ConsoleLogList):
    """`GET /api/logs?level=&limit=&before=`: system (5) and error (4) rows."""

    queryset = Log.objects.system().newest_first()
    serializer_class = ConsoleLogSerializer
    filterset_class = SystemLogFilterSet


@console_list_schema("console_tool_logs", "Tool executions, newest first", ConsoleToolLogSerializer)
class ToolLogListView(ConsoleLogList):
    """`GET /api/logs/tools?toolName=&userId=&status=&limit=`."""

    queryset = ToolCall.objects.newest_first()
    serializer_class = ConsoleToolLogSerializer
    filterset_class = ToolLogFilterSet


@console_list_schema("console_error_logs", "Error logs, newest first", ConsoleErrorLogSerializer)
class ErrorLogListView(ConsoleLogList):
    """`GET /api/logs/errors`: error rows (failed LLM calls carry their channel and model)."""

    queryset = Log.objects.errors().select_related("channel").newest_first()
    serializer_class = ConsoleErrorLogSerializer
    filterset_class = ErrorLogFilterSet
    pagination_class = ConsoleErrorPagination
