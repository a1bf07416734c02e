"""Messaging endpoints: ingest, the bot stats message API (`/messages/…`, bare JSON,
errors `{"detail"}`, service keys only) and the console's usage overview and rankings
(`/api/stats`, `/api/stats/users`, `/api/stats/groups`, `{"success": true, "data"}`).

Each stats view validates its parameters with a serializer (which also documents
them), calls one selector and hands plain data to its dialect's envelope.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from logs.api.pagination import query_params, validated
from logs.api.serializers import ConsoleLogErrorSerializer
from messaging.api.serializers import (
    CHAT_STATS_RESPONSE,
    RECENT_MESSAGES_RESPONSE,
    ChatStatsParamsSerializer,
    ConsoleStatsParamsSerializer,
    ConsoleStatsSerializer,
    ConsoleStatsResponseSerializer,
    GroupRankingResponseSerializer,
    GroupRankingSerializer,
    MessageRecordSerializer,
    RankingParamsSerializer,
    RecentMessagesParamsSerializer,
    UserRankingResponseSerializer,
    UserRankingSerializer,
)
from messaging.selectors import ChatCount, console_stats, group_ranking, message_counts, messages_by_chat, user_ranking
from messaging.services import record_messages
from statsite.api.schema import DetailErrorSerializer, ingest_schema
from statsite.dialects import BARE, CONSOLE
from statsite.ingest import BatchIngestView
from statsite.periods import last_calendar_days
from statsite.permissions import IsAdminOrService, IsService
from usage.selectors import stats_zone


@ingest_schema("ingest_messages", "Record chat messages", MessageRecordSerializer)
class MessageIngestView(BatchIngestView):
    record_serializer_class = MessageRecordSerializer

    def store(self, records):
        return record_messages(records)


def params_of(request: Request, serializer_class: type[Serializer]) -> dict[str, Any]:
    """The validated query parameters; a blank value means the parameter's default."""
    return validated(serializer_class, query_params(request, tuple(serializer_class().fields)))


# --- the bot stats message API -------------------------------------------------------------

BOT_STATS_TAG = "bot stats"
BOT_STATS_ERRORS = {code: DetailErrorSerializer for code in (400, 401, 403, 500, 503)}
BOT_WINDOW = (
    "The window is the last `days` calendar days in STATS_TIME_ZONE, today included, up to now "
    "(as `/llm/stats?period_type=daily`). For a service key (`X-API-Key` or Bearer); accounts get 403. "
    'A bad parameter answers 400 `{"detail": "<parameter>: <why>"}`.'
)


class MessagesRecentView(APIView):
    """`GET /messages/recent?days=&message_type=`: how many messages the bot sent and received."""

    dialect = BARE
    permission_classes = [IsService]

    @extend_schema(
        operation_id="messages_recent",
        tags=[BOT_STATS_TAG],
        summary="Messages the bot sent and received over the last days",
        description=(
            "`message_type=all` answers `days`, `message_type`, `sent_count`, `received_count`, "
            "`total_count`; `sent` or `received` answers `days`, `message_type`, `count`. "
            f"Sent: by the bot; received: everyone else's. {BOT_WINDOW}"
        ),
        parameters=[RecentMessagesParamsSerializer],
        responses={200: RECENT_MESSAGES_RESPONSE, **BOT_STATS_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        params = params_of(request, RecentMessagesParamsSerializer)
        start, end = last_calendar_days(params["days"], tz=stats_zone())
        counts = message_counts(start=start, end=end)
        kind = params["message_type"]
        body: dict[str, Any] = {"days": params["days"], "message_type": kind}
        if kind == "all":
            body |= {
                "sent_count": counts["sent"],
                "received_count": counts["received"],
                "total_count": counts["sent"] + counts["received"],
            }
        else:
            body["count"] = counts[kind]
        return self.dialect.ok(body)


def chat_stats_body(chats: list[ChatCount], *, source: str, group_by_user: bool, with_names: bool) -> dict:
    """The shape `/messages/stats_by_chat` documents for these parameters, per chat id."""
    body: dict[str, Any] = {}
    for chat in chats:
        if source == "bot":
            body[chat.chat_id] = {"chat_name": chat.name, "count": chat.count} if with_names else chat.count
            continue
        if not group_by_user and not with_names:
            body[chat.chat_id] = {"total": chat.count}
            continue
        entry: dict[str, Any] = {"chat_name": chat.name} if with_names else {}
        entry["total_stats"] = {"total": chat.count}
        if group_by_user:
            entry["user_stats"] = {
                s.user_id: ({"nickname": s.nickname, "count": s.count} if with_names else s.count)
                for s in chat.senders
            }
        body[chat.chat_id] = entry
    return body


class _SettingsWithoutFormatOverride:
    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name: str) -> Any:
        return getattr(api_settings, name)


class FormatIsAParameter(DefaultContentNegotiation):
    """Content negotiation by the Accept header only. DRF would read `?format=` as the
    renderer to use (and answer 404 to `format=true`); here it is the endpoint's own
    parameter, as the bot stats document defines it."""

    settings = _SettingsWithoutFormatOverride()


class MessagesByChatView(APIView):
    """`GET /messages/stats_by_chat?days=&source=&group_by_user=&format=`: messages per chat."""

    dialect = BARE
    permission_classes = [IsService]
    content_negotiation_class = FormatIsAParameter

    @extend_schema(
        operation_id="messages_stats_by_chat",
        tags=[BOT_STATS_TAG],
        summary="Messages per chat (and per sender) over the last days",
        description=(
            "Keyed by platform chat id, busiest first; chats without such messages are left out. "
            "source=bot: `{chat_id: count}`, with format `{chat_id: {chat_name, count}}`. "
            "source=user: `{chat_id: {total}}`; with format `{chat_id: {chat_name, total_stats: {total}}}`; "
            "with group_by_user `{chat_id: {total_stats: {total}, user_stats: {user_id: count}}}`; with both "
            "`{chat_id: {chat_name, total_stats: {total}, user_stats: {user_id: {nickname, count}}}}`. "
            "group_by_user is ignored for source=bot. `chat_name` is the group's name, or a private chat's "
            'peer nickname; names never recorded read "unknown"; messages without a sender count under the '
            f'user id "". {BOT_WINDOW}'
        ),
        parameters=[ChatStatsParamsSerializer],
        responses={200: OpenApiResponse(CHAT_STATS_RESPONSE), **BOT_STATS_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        params = params_of(request, ChatStatsParamsSerializer)
        start, end = last_calendar_days(params["days"], tz=stats_zone())
        chats = messages_by_chat(
            start=start,
            end=end,
            source=params["source"],
            by_sender=params["group_by_user"],
            with_names=params["format"],
        )
        body = chat_stats_body(
            chats, source=params["source"], group_by_user=params["group_by_user"], with_names=params["format"]
        )
        return self.dialect.ok(body)


# --- the console overview and rankings -------------------------------------------------------

CONSOLE_STATS_TAG = "console stats"
CONSOLE_ERRORS = {code: ConsoleLogErrorSerializer for code in (400, 401, 403, 500, 503)}
CONSOLE_CALLERS = (
    "For a service key (`X-API-Key` or Bearer) or an administrator's token; other accounts get 403. "
    'A bad parameter answers 400 `{"success": false, "error": "<parameter>: <why>"}`.'
)


class ConsoleStatsView(APIView):
    """`GET /api/stats?period=&groupId=`: the usage overview with a daily series."""

    dialect = CONSOLE
    permission_classes = [IsAdminOrService]

    @extend_schema(
        operation_id="console_stats",
        tags=[CONSOLE_STATS_TAG],
        summary="Usage overview: messages, bot responses, tool calls, tokens, active users and groups",
        description=(
            "`summary` covers the period; `daily` has every day of it (days in STATS_TIME_ZONE), zero-filled. "
            "`groupId` restricts every number to that chat (tokens and tool calls by the chat id their calls "
            f"carry); an unknown chat answers zeros. {CONSOLE_CALLERS}"
        ),
        parameters=[ConsoleStatsParamsSerializer],
        responses={200: ConsoleStatsResponseSerializer, **CONSOLE_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        params = params_of(request, ConsoleStatsParamsSerializer)
        stats = console_stats(period=params["period"], group_id=params.get("groupId"), tz=stats_zone())
        return self.dialect.ok(ConsoleStatsSerializer(stats).data)


class ConsoleUserRankingView(APIView):
    """`GET /api/stats/users?limit=&sort=`: the most active people of all time."""

    dialect = CONSOLE
    permission_classes = [IsAdminOrService]

    @extend_schema(
        operation_id="console_stats_users",
        tags=[CONSOLE_STATS_TAG],
        summary="User ranking by messages or tokens (all time)",
        description=(
            "People who wrote messages or whose account used LLM tokens (a platform user id and an "
            "account username are one person), over all time, descending by `sort`, ties by userId. "
            f"The bot's messages are nobody's. {CONSOLE_CALLERS}"
        ),
        parameters=[RankingParamsSerializer],
        responses={200: UserRankingResponseSerializer, **CONSOLE_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        params = params_of(request, RankingParamsSerializer)
        users = user_ranking(sort=params["sort"], limit=params["limit"])
        return self.dialect.ok(UserRankingSerializer({"users": users}).data)


class ConsoleGroupRankingView(APIView):
    """`GET /api/stats/groups?limit=&sort=`: the most active group chats of all time."""

    dialect = CONSOLE
    permission_classes = [IsAdminOrService]

    @extend_schema(
        operation_id="console_stats_groups",
        tags=[CONSOLE_STATS_TAG],
        summary="Group ranking by messages or tokens (all time)",
        description=(
            "Group chats with messages or LLM calls, over all time, descending by `sort`, ties by groupId. "
            f"Private chats are not groups. {CONSOLE_CALLERS}"
        ),
        parameters=[RankingParamsSerializer],
        responses={200: GroupRankingResponseSerializer, **CONSOLE_ERRORS},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        params = params_of(request, RankingParamsSerializer)
        groups = group_ranking(sort=params["sort"], limit=params["limit"])
        return self.dialect.ok(GroupRankingSerializer({"groups": groups}).data)
