"""Fill the database with realistic demo data, through the ingest code path.

Every generated record is validated by the record serializer of its ingest
endpoint and stored by the same service (`store_batch(record_xxx, ...)`), so the
demo exercises exactly what a client's data would: accounts, relay keys,
channels, chats and participants are created on first sight, LLM calls without
a cost are priced from the model price table, and rollups (where the services
keep them) are written alongside.

The data is a small world: a gateway with users, relay keys, channels and a
dozen priced models; a chat bot in group and private chats whose replies cost
LLM calls and sometimes tool calls; and the operational logs of both. Volume
follows a daily rhythm (quiet at night, busy in the afternoon, in
STATS_TIME_ZONE) and a weekly one (quieter weekends).

Each local day is generated from its own seeded random stream, and every record
carries an id derived from its day (`demo-llm-20250131-17`), so:
- a day's data is the same whatever `--days` and whenever the command runs;
- running again creates nothing (everything is a duplicate), and running on a
  later day adds only the new days (and the part of today that has passed).
Nothing is ever dated after the moment the command runs.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rest_framework import serializers
from tqdm import tqdm

from logs.api.serializers import LLMCallRecordSerializer, LogRecordSerializer
from logs.services import record_llm_calls, record_logs
from messaging.api.serializers import MessageRecordSerializer
from messaging.services import record_messages
from statsite.ingest import store_batch, validate_records
from usage.api.serializers import ToolCallRecordSerializer
from usage.models import ModelPrice
from usage.services import record_tool_calls

BATCH_SIZE = 1000  # the ingest endpoints' own per-request maximum
MAX_DAYS = 366
MAX_SCALE = 1000


def _now() -> datetime:
    """The moment nothing may be dated after (a seam for tests that freeze time)."""
    return timezone.now()


# --- the demo world ---------------------------------------------------------------


@dataclass(frozen=True)
class ChannelSpec:
    id: int
    name: str
    slug: str  # how the bot console names a channel in error contexts ("openai-main")
    failure_rate: float


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_per_million: str
    output_per_million: str
    channels: tuple[int, ...]  # the first one is the primary route
    latency_ms: int  # typical time to first byte plus a short answer
    ms_per_token: float  # generation speed, so long answers take longer
    embedding: bool = False


CHANNELS = (
    ChannelSpec(1, "OpenAI 主渠道", "openai-main", 0.02),
    ChannelSpec(2, "OpenAI 备用渠道", "openai-backup", 0.03),
    ChannelSpec(3, "Claude 官方", "claude-official", 0.025),
    ChannelSpec(4, "Azure OpenAI", "azure-eastus", 0.05),
    ChannelSpec(5, "Gemini", "gemini", 0.03),
    ChannelSpec(6, "DeepSeek", "deepseek", 0.04),
    ChannelSpec(7, "通义千问", "qwen", 0.02),
)
CHANNEL_BY_ID = {c.id: c for c in CHANNELS}

# Public list prices (USD per 1M tokens), close enough to be recognisable.
MODELS = (
    ModelSpec("gpt-4o", "2.50", "10.00", (1, 4, 2), 800, 9),
    ModelSpec("gpt-4o-mini", "0.15", "0.60", (1, 4, 2), 450, 5),
    ModelSpec("gpt-4.1", "2.00", "8.00", (1, 2), 850, 9),
    ModelSpec("gpt-4.1-mini", "0.40", "1.60", (1, 2), 500, 5),
    ModelSpec("o3-mini", "1.10", "4.40", (1, 2), 4000, 7),
    ModelSpec("claude-3-5-sonnet", "3.00", "15.00", (3,), 1000, 11),
    ModelSpec("claude-3-5-haiku", "0.80", "4.00", (3,), 550, 6),
    ModelSpec("claude-3-opus", "15.00", "75.00", (3,), 2200, 20),
    ModelSpec("gemini-1.5-pro", "1.25", "5.00", (5,), 950, 8),
    ModelSpec("gemini-2.0-flash", "0.10", "0.40", (5,), 400, 3),
    ModelSpec("deepseek-chat", "0.27", "1.10", (6,), 1100, 12),
    ModelSpec("deepseek-reasoner", "0.55", "2.19", (6,), 5000, 14),
    ModelSpec("qwen-max", "1.60", "6.40", (7,), 900, 10),
    ModelSpec("text-embedding-3-small", "0.02", "0", (1, 2), 180, 0, embedding=True),
)
MODEL_BY_NAME = {m.name: m for m in MODELS}


@dataclass(frozen=True)
class GatewayUser:
    name: str
    group: str
    keys: tuple[str, ...]
    models: tuple[tuple[str, int], ...]  # (model, weight): each user has habits
    ip: str
    weight: int  # share of the gateway's traffic


GATEWAY_USERS = (
    GatewayUser("alice", "default", ("default", "cursor"),
                (("gpt-4o", 5), ("gpt-4o-mini", 3), ("claude-3-5-sonnet", 2)), "203.0.113.10", 5),
    GatewayUser("bob", "vip", ("production", "staging"),
                (("gpt-4.1", 4), ("gpt-4.1-mini", 4), ("text-embedding-3-small", 3), ("o3-mini", 1)),
                "203.0.113.24", 7),
    GatewayUser("carol", "default", ("测试",),
                (("deepseek-chat", 5), ("deepseek-reasoner", 2), ("qwen-max", 1)), "198.51.100.7", 3),
    GatewayUser("zhangwei", "vip", ("api",),
                (("claude-3-5-sonnet", 4), ("claude-3-5-haiku", 3), ("claude-3-opus", 1)), "198.51.100.42", 4),
    GatewayUser("liuyang", "default", ("default",),
                (("gemini-2.0-flash", 4), ("gemini-1.5-pro", 2), ("gpt-4o-mini", 2)), "192.0.2.15", 2),
    GatewayUser("dev-team", "svip", ("ci", "production"),
                (("gpt-4o", 3), ("gpt-4o-mini", 5), ("claude-3-5-haiku", 2), ("text-embedding-3-small", 2)),
                "192.0.2.200", 6),
)


def relay_key(user: str, name: str) -> str:
    """A stable `sk-` key per user and key name, so a rerun finds the same relay key.
    These keys are public knowledge: never seed a database that holds real data."""
    return "sk-" + hashlib.sha256(f"statsite-demo/{user}/{name}".encode()).hexdigest()[:48]


@dataclass(frozen=True)
class Person:
    user_id: str
    nickname: str
    chattiness: int


PEOPLE = (
    Person("10001", "张三", 6),
    Person("10002", "李四", 4),
    Person("10003", "王五", 3),
    Person("10004", "赵六", 2),
    Person("10005", "小明", 5),
    Person("10006", "小红", 4),
    Person("10007", "阿强", 2),
    Person("10008", "Luna", 3),
    Person("10009", "Kevin", 2),
    Person("10010", "夜猫子", 3),
    Person("10011", "咸鱼", 1),
    Person("10012", "活跃用户", 9),
)
PERSON_BY_ID = {p.user_id: p for p in PEOPLE}
BOT = Person("2854196310", "小助手", 0)


@dataclass(frozen=True)
class ChatSpec:
    chat_id: str
    kind: str
    name: str
    members: tuple[str, ...]
    weight: int
    mention_rate: float  # how often a message is addressed to the bot


def _private(user_id: str, weight: int) -> ChatSpec:
    # A private chat is named after the person, as the bot stats document shows.
    return ChatSpec(f"private_{user_id}", "private", PERSON_BY_ID[user_id].nickname, (user_id,), weight, 1.0)


CHATS = (
    ChatSpec("chat_123456", "group", "技术交流群", ("10001", "10002", "10003", "10005", "10006", "10012"), 10, 0.3),
    ChatSpec("chat_789012", "group", "AI 爱好者", ("10003", "10007", "10008", "10009", "10012"), 7, 0.35),
    ChatSpec("chat_345678", "group", "Python 学习群", ("10002", "10004", "10005", "10010", "10011"), 5, 0.25),
    ChatSpec("chat_567890", "group", "摸鱼闲聊群", tuple(p.user_id for p in PEOPLE), 8, 0.15),
    _private("10001", 2),
    _private("10008", 2),
    _private("10012", 3),
)
GROUP_CHATS = tuple(c for c in CHATS if c.kind == "group")

CHATTER = (
    "哈哈哈哈", "有人在吗", "今天好累", "晚上开黑吗", "[图片]", "+1", "这个问题我也遇到过", "周末去哪玩",
    "刚下班", "新版本发布了", "有人用过 claude 吗", "代码又跑不起来了", "收到", "666", "早", "晚安",
)


@dataclass(frozen=True)
class Question:
    text: str
    tool: str | None
    answer: str


QUESTIONS = (
    Question("北京今天天气怎么样?", "get_weather", "北京今天晴,15°C,适合出门。"),
    Question("上海明天会下雨吗", "get_weather", "上海明天有小雨,记得带伞。"),
    Question("现在几点了", "get_time", "现在是北京时间下午三点二十分。"),
    Question("帮我搜一下 Django 5.2 有什么新特性", "web_search", "Django 5.2 带来了复合主键、自动导入 shell 模型等新特性。"),
    Question("最近有什么 AI 新闻", "web_search", "我搜到了几条最新消息,给你总结一下……"),
    Question("算一下 1234 * 5678", "calculator", "1234 × 5678 = 7006652"),
    Question("画一只戴帽子的猫", "image_generate", "画好啦,请查收。"),
    Question("帮我写一首关于秋天的诗", None, "秋风起兮白云飞,草木黄落兮雁南归。"),
    Question("解释一下什么是递归", None, "递归就是函数调用自身,直到满足终止条件。"),
    Question("你是谁", None, "我是群里的 AI 小助手,有问题随时找我。"),
    Question("推荐一本书", None, "推荐《三体》,很适合入门科幻。"),
    Question("Python 和 Go 哪个好", None, "各有所长:Python 生态丰富,Go 并发简单、部署方便。"),
)

# The bot's own model mix for replies, and the cheap model that plans them.
REPLY_MODELS = (
    ("gpt-4o", 35), ("claude-3-5-sonnet", 30), ("deepseek-chat", 20), ("gemini-2.0-flash", 10), ("qwen-max", 5)
)
PLANNER_MODELS = (("gpt-4o-mini", 3), ("deepseek-chat", 1))


@dataclass(frozen=True)
class ToolSpec:
    tool_id: str
    tool_name: str
    duration_ms: int
    failure_rate: float
    cost: str  # charged per successful call only, as tool metering does


TOOLS = {
    t.tool_id: t
    for t in (
        ToolSpec("get_time", "get_time", 15, 0.005, "0"),
        ToolSpec("get_weather", "get_weather", 1500, 0.05, "0"),
        ToolSpec("web_search", "web_search", 2500, 0.07, "0.005"),
        ToolSpec("calculator", "calculator", 5, 0.002, "0"),
        ToolSpec("image_generate", "image_generate", 12000, 0.12, "0.04"),
        ToolSpec("shouji_query", "手机号码归属地查询", 120, 0.0, "0"),
        ToolSpec("weather_forecast", "天气预报", 300, 0.05, "0.02"),
    )
}
TOOL_ERRORS = ("timeout after 10s", "upstream returned 503", "invalid arguments", "quota exhausted")
CITIES = ("北京", "上海", "杭州", "深圳", "成都", "广州")

LLM_ERRORS = (
    ("API rate limit exceeded", 120),
    ("Request timed out after 60s", 60000),
    ("upstream error: 502 Bad Gateway", 800),
    ("The model is overloaded, please retry later", 300),
    ("context_length_exceeded: maximum context length is 128000 tokens", 200),
)

# Relative activity per local hour: quiet at night, busiest mid-afternoon.
HOUR_WEIGHTS = (2, 1, 0.6, 0.4, 0.4, 0.6, 1.5, 3, 5, 7, 8, 8, 7, 8, 9, 10, 10, 9, 8, 8, 9, 8, 6, 4)
HOUR_CUM = tuple(accumulate(HOUR_WEIGHTS))
HOURS = tuple(range(24))
# Monday..Sunday.
WEEKDAY_FACTOR = (1.0, 1.0, 1.0, 0.95, 0.9, 0.55, 0.5)

# Mean events per weekday at scale 1 (before the weekly rhythm and jitter).
BASE_USER_MESSAGES = 140
BASE_GATEWAY_CALLS = 60
BASE_BACKGROUND_CALLS = 16
BASE_AGENT_TOOL_CALLS = 14
BASE_TOPUPS = 0.6
BASE_MANAGE = 0.8
BASE_ERRORS = 2.5
BASE_SYSTEM = 14


def _weighted(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([v for v, _ in pairs], weights=[w for _, w in pairs])[0]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _cost(model: ModelSpec, prompt: int, completion: int) -> Decimal:
    total = Decimal(model.input_per_million) * prompt + Decimal(model.output_per_million) * completion
    return (total / Decimal(1_000_000)).quantize(Decimal("0.00000001"))


# --- one day --------------------------------------------------------------------


@dataclass
class DemoDay:
    """Everything that happened on one local day, generated from that day alone."""

    day: date
    scale: int
    tz: ZoneInfo
    rng: random.Random = field(init=False)
    factor: float = field(init=False)
    llm_calls: list[tuple[datetime, dict]] = field(default_factory=list)
    tool_calls: list[tuple[datetime, dict]] = field(default_factory=list)
    messages: list[tuple[datetime, dict]] = field(default_factory=list)
    logs: list[tuple[datetime, dict]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A string seed is hashed stably (unlike hash()), so the day replays exactly.
        self.rng = random.Random(f"statsite-demo/{self.day.isoformat()}/{self.scale}")
        self.factor = WEEKDAY_FACTOR[self.day.weekday()] * self.scale * self.rng.uniform(0.85, 1.15)
        self._conversations()
        self._gateway_traffic()
        self._rate_limit_burst()
        self._background_calls()
        self._agent_tool_calls()
        self._operations_logs()

    # -- helpers --

    def count(self, base: float) -> int:
        # Stochastic rounding keeps rare events (a top-up every other day) rare but present.
        expected = base * self.factor
        return int(expected + self.rng.random())

    def moment(self, hours: Sequence[int] | None = None) -> datetime:
        """A random instant of the day, drawn with the daily rhythm (in local time)."""
        if hours is None:
            hour = self.rng.choices(HOURS, cum_weights=HOUR_CUM)[0]
        else:
            hour = self.rng.choice(hours)
        local = datetime.combine(self.day, time(hour), tzinfo=self.tz)
        return (local + timedelta(seconds=self.rng.uniform(0, 3600))).astimezone(UTC)

    def latency(self, model: ModelSpec, completion_tokens: int) -> int:
        base = model.latency_ms + model.ms_per_token * completion_tokens
        return max(20, int(base * self.rng.lognormvariate(0, 0.35)))

    def channel_for(self, model: ModelSpec) -> ChannelSpec:
        weights = [4] + [1] * (len(model.channels) - 1)
        return CHANNEL_BY_ID[self.rng.choices(model.channels, weights=weights)[0]]

    def llm_call(
        self,
        at: datetime,
        model: ModelSpec,
        *,
        prompt_mean: int,
        completion_mean: int,
        extra: dict,
        fail: str | None = None,
    ) -> tuple[dict, int]:
        """An LLM call record and its latency. Most calls omit `cost`, to be priced
        from the model price table; failed calls consumed no tokens."""
        channel = self.channel_for(model)
        if fail is None and self.rng.random() < channel.failure_rate:
            fail = self.rng.choice(LLM_ERRORS)[0]
        record: dict[str, Any] = {
            "model_name": model.name,
            "channel_id": channel.id,
            "channel_name": channel.name,
            **extra,
        }
        if fail is not None:
            latency = next(ms for e, ms in LLM_ERRORS if e == fail)
            latency = max(20, int(latency * self.rng.uniform(0.7, 1.3)))
            record.update(
                success=False,
                error=fail,
                latency_ms=latency,
                other={"context": {"channel": channel.slug, "model": model.name}},
            )
            self.llm_calls.append((at, record))
            return record, latency
        prompt = max(8, int(prompt_mean * self.rng.lognormvariate(0, 0.5)))
        completion = 0 if model.embedding else max(1, int(completion_mean * self.rng.lognormvariate(0, 0.6)))
        latency = self.latency(model, completion)
        record.update(prompt_tokens=prompt, completion_tokens=completion, latency_ms=latency)
        self.llm_calls.append((at, record))
        return record, latency

    def tool_call(
        self, at: datetime, tool: ToolSpec, *, username: str, chat_id: str = "", fail: str | None = None
    ) -> tuple[bool, int]:
        """A tool call record; returns whether it succeeded and how long it took."""
        args, result = self._tool_io(tool)
        failed = fail is not None or self.rng.random() < tool.failure_rate
        duration = max(1, int(tool.duration_ms * self.rng.lognormvariate(0, 0.4)))
        if failed:
            error = fail or self.rng.choice(TOOL_ERRORS)
            if error.startswith("timeout"):
                duration = 10_000 + self.rng.randint(0, 50)
            result = {"error": error}
        record = {
            "tool_id": tool.tool_id,
            "tool_name": tool.tool_name,
            "username": username,
            "chat_id": chat_id,
            "args": args,
            "result": result,
            "success": not failed,
            "duration_ms": duration,
            "cost": "0" if failed else tool.cost,
        }
        self.tool_calls.append((at, record))
        return not failed, duration

    def _tool_io(self, tool: ToolSpec) -> tuple[dict, dict]:
        rng = self.rng
        city = rng.choice(CITIES)
        match tool.tool_id:
            case "get_time":
                return {"timezone": "Asia/Shanghai"}, {"time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"}
            case "get_weather" | "weather_forecast":
                return {"city": city}, {"temp": rng.randint(-5, 35), "condition": rng.choice(("晴", "多云", "小雨", "阴"))}
            case "web_search":
                query = rng.choice(("Django 5.2", "AI 新闻", "杭州美食", "GPT-4o 价格"))
                return {"query": query}, {"results": rng.randint(3, 10)}
            case "calculator":
                a, b = rng.randint(2, 9999), rng.randint(2, 9999)
                return {"expression": f"{a}*{b}"}, {"value": a * b}
            case "image_generate":
                return {"prompt": "一只戴帽子的猫"}, {"url": f"https://img.example.com/{rng.getrandbits(40):x}.png"}
            case "shouji_query":
                return {"shouji": f"13{rng.randint(0, 9)}****{rng.randint(1000, 9999)}"}, {
                    "province": rng.choice(("浙江", "广东", "北京")), "company": rng.choice(("中国移动", "中国联通"))
                }
        return {}, {}

    # -- what happens --

    def _conversations(self) -> None:
        """People chat; the bot answers when addressed: a planner call, maybe a
        tool, a reply call, then its message. A failed call means no reply."""
        rng = self.rng
        for _ in range(self.count(BASE_USER_MESSAGES)):
            chat = _weighted(rng, [(c, c.weight) for c in CHATS])
            sender = _weighted(rng, [(PERSON_BY_ID[m], PERSON_BY_ID[m].chattiness) for m in chat.members])
            at = self.moment()
            addressed = rng.random() < chat.mention_rate
            question = rng.choice(QUESTIONS) if addressed else None
            text = rng.choice(CHATTER) if question is None else question.text
            if question is not None and chat.kind == "group":
                text = f"@{BOT.nickname} {text}"
            self.message(at, chat, sender, text)
            if question is None:
                continue

            who = {"username": sender.user_id, "chat_id": chat.chat_id}
            t = at + timedelta(milliseconds=rng.randint(150, 1200))
            planner = MODEL_BY_NAME[_weighted(rng, PLANNER_MODELS)]
            record, ms = self.llm_call(
                t, planner, prompt_mean=900, completion_mean=60,
                extra={**who, "module": "planner", "request_type": "planner.plan"},
            )
            if record.get("success") is False:
                continue
            t += timedelta(milliseconds=ms)
            answer = question.answer
            if question.tool is not None:
                ok, ms = self.tool_call(t, TOOLS[question.tool], **who)
                t += timedelta(milliseconds=ms)
                if not ok:
                    answer = "抱歉,工具暂时不可用,稍后再试试吧。"
            replier = MODEL_BY_NAME[_weighted(rng, REPLY_MODELS)]
            extra: dict[str, Any] = {**who, "module": "replyer", "request_type": "replyer.reply"}
            record, ms = self.llm_call(t, replier, prompt_mean=1500, completion_mean=180, extra=extra)
            if record.get("success") is False:
                continue
            if rng.random() < 0.1:
                # Some bots report what they were charged: a recorded cost wins over the table.
                record["cost"] = str(_cost(replier, record["prompt_tokens"], record["completion_tokens"]))
            t += timedelta(milliseconds=ms + rng.randint(200, 900))
            self.message(t, chat, BOT, answer, by_bot=True)

    def message(self, at: datetime, chat: ChatSpec, sender: Person, text: str, *, by_bot: bool = False) -> None:
        self.messages.append(
            (
                at,
                {
                    "chat_id": chat.chat_id,
                    "chat_name": chat.name,
                    "chat_type": chat.kind,
                    "user_id": sender.user_id,
                    "nickname": sender.nickname,
                    "sent_by_bot": by_bot,
                    "text": text,
                },
            )
        )

    def _gateway_call(self, at: datetime, user: GatewayUser, *, fail: str | None = None) -> None:
        rng = self.rng
        model = MODEL_BY_NAME[_weighted(rng, user.models)]
        key_name = rng.choice(user.keys)
        model_ratio = float(Decimal(model.input_per_million) / 2)
        extra: dict[str, Any] = {
            "username": user.name,
            "token_key": relay_key(user.name, key_name),
            "token_name": key_name,
            "group": user.group,
            "ip": user.ip,
            "request_type": "embeddings" if model.embedding else "chat.completions",
            "is_stream": (not model.embedding) and rng.random() < 0.6,
        }
        record, _ = self.llm_call(at, model, prompt_mean=1200, completion_mean=350, extra=extra, fail=fail)
        if record.get("success") is not False:
            completion_ratio = (
                float(Decimal(model.output_per_million) / Decimal(model.input_per_million))
                if Decimal(model.input_per_million) else 1.0
            )
            # What the gateway itself writes on a consume row.
            record["content"] = f"模型倍率 {model_ratio:g},补全倍率 {completion_ratio:g},分组倍率 1"
            record["other"] = {"model_ratio": model_ratio, "completion_ratio": completion_ratio, "group_ratio": 1}

    def _gateway_traffic(self) -> None:
        for _ in range(self.count(BASE_GATEWAY_CALLS)):
            user = _weighted(self.rng, [(u, u.weight) for u in GATEWAY_USERS])
            self._gateway_call(self.moment(), user)

    def _rate_limit_burst(self) -> None:
        """Every day an upstream throttles a few calls in a row at the busy hours:
        the failed calls and the error logs have something to show on any day."""
        rng = self.rng
        start = self.moment(hours=(14, 15, 16))
        user = _weighted(rng, [(u, u.weight) for u in GATEWAY_USERS])
        for n in range(rng.randint(2, 5)):
            self._gateway_call(start + timedelta(seconds=n * rng.uniform(5, 30)), user, fail="API rate limit exceeded")

    def _background_calls(self) -> None:
        """The bot's own work between messages: memory building and chat summaries."""
        rng = self.rng
        for _ in range(self.count(BASE_BACKGROUND_CALLS)):
            chat = rng.choice(GROUP_CHATS)
            module, request_type = rng.choice((("memory", "memory.build"), ("summary", "chat.summary")))
            self.llm_call(
                self.moment(), MODEL_BY_NAME["gpt-4o-mini"], prompt_mean=2500, completion_mean=250,
                extra={"chat_id": chat.chat_id, "module": module, "request_type": request_type},
            )

    def _agent_tool_calls(self) -> None:
        """Metered tools called straight by gateway users' agents (no chat).
        One is always a timeout, so failed tool calls show up every day."""
        rng = self.rng
        for _ in range(self.count(BASE_AGENT_TOOL_CALLS)):
            user = _weighted(rng, [(u, u.weight) for u in GATEWAY_USERS])
            tool = TOOLS[rng.choice(("shouji_query", "weather_forecast", "weather_forecast", "web_search"))]
            self.tool_call(self.moment(), tool, username=user.name)
        user = rng.choice(GATEWAY_USERS)
        self.tool_call(self.moment(), TOOLS["web_search"], username=user.name, fail="timeout after 10s")

    def _operations_logs(self) -> None:
        rng = self.rng
        quota_unit = settings.QUOTA_PER_UNIT
        # At least one of each type per day, so every log filter has rows to show.
        for _ in range(max(1, self.count(BASE_TOPUPS))):
            user = rng.choice(GATEWAY_USERS)
            dollars = rng.choice((5, 10, 20, 50, 100))
            content = rng.choice(("通过兑换码充值 ${:.2f} 额度", "在线充值成功,充值额度: ${:.2f}")).format(dollars)
            self.logs.append(
                (self.moment(), {"type": 1, "username": user.name, "quota": dollars * quota_unit, "content": content})
            )
        for _ in range(max(1, self.count(BASE_MANAGE))):
            user = rng.choice(GATEWAY_USERS)
            channel = rng.choice(CHANNELS)
            content = rng.choice(
                (
                    f"管理员将用户 {user.name} 的额度修改为 ${rng.choice((10, 25, 50))}.00",
                    f"管理员禁用了令牌 {user.keys[0]}",
                    f"管理员将用户 {user.name} 的分组修改为 {user.group}",
                    f"管理员更新了渠道 #{channel.id} {channel.name}",
                )
            )
            self.logs.append((self.moment(hours=range(9, 19)), {"type": 3, "username": user.name, "content": content}))
        for _ in range(max(1, self.count(BASE_ERRORS))):
            self.logs.append((self.moment(), self._error_log()))
        levels = ["debug", "info", "warn", "error"]  # each level at least once a day
        levels += rng.choices(("debug", "info", "warn", "error"), weights=(25, 55, 15, 5), k=self.count(BASE_SYSTEM))
        for level in levels:
            self.logs.append((self.moment(), self._system_log(level)))

    def _error_log(self) -> dict:
        rng = self.rng
        chat = rng.choice(CHATS)
        message, module, frame = rng.choice(
            (
                ("Failed to send message: connection reset by peer", "message_sender", "adapter/send.py"),
                ("Database query timed out after 30s", "storage", "storage/db.py"),
                ("Plugin weather raised KeyError: 'temp'", "plugin", "plugins/weather.py"),
                ("Invalid JSON in model response", "replyer", "replyer/parse.py"),
            )
        )
        stack = (
            "Traceback (most recent call last):\n"
            f'  File "{frame}", line {rng.randint(20, 400)}, in handle\n'
            f"    raise RuntimeError({message!r})\n"
            f"RuntimeError: {message}"
        )
        return {
            "type": 4,
            "content": message,
            "module": module,
            "chat_id": chat.chat_id,
            "other": {"stack": stack, "context": {"chat_id": chat.chat_id, "module": module}},
        }

    def _system_log(self, level: str) -> dict:
        rng = self.rng
        person = rng.choice(PEOPLE)
        model = _weighted(rng, REPLY_MODELS)
        channel = rng.choice(CHANNELS)
        content, other = {
            "debug": (f"Cache warmed: {rng.randint(200, 2000)} entries", {"cache": "prompt"}),
            "info": ("Chat request processed", {"userId": person.user_id, "model": model}),
            "warn": (f"Channel {channel.slug} latency above 5s", {"channel": channel.slug}),
            "error": ("Scheduled memory consolidation failed", {"job": "memory.consolidate"}),
        }[level]
        return {"type": 5, "level": level, "content": content, "other": other}

    # -- the records --

    def records(self, kind: str, *, until: datetime) -> list[dict]:
        """The day's records of KIND in time order, with stable ids and timestamps,
        leaving out whatever has not happened yet at UNTIL."""
        prefix, events = {
            "llm_calls": ("llm", self.llm_calls),
            "tool_calls": ("tool", self.tool_calls),
            "messages": ("msg", self.messages),
            "logs": ("log", self.logs),
        }[kind]
        id_field = "message_id" if kind == "messages" else "request_id"
        stamp = self.day.strftime("%Y%m%d")
        out = []
        # Numbered before the cut, so a record keeps its id however late the day is seen.
        for n, (at, record) in enumerate(sorted(events, key=lambda e: e[0]), start=1):
            if at <= until:
                out.append({id_field: f"demo-{prefix}-{stamp}-{n}", "created_at": _iso(at), **record})
        return out


# --- storing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    serializer: type[serializers.Serializer]
    store: Callable[[list[dict]], int]


KINDS = (
    Kind("llm_calls", "llm calls", LLMCallRecordSerializer, record_llm_calls),
    Kind("tool_calls", "tool calls", ToolCallRecordSerializer, record_tool_calls),
    Kind("messages", "messages", MessageRecordSerializer, record_messages),
    Kind("logs", "logs", LogRecordSerializer, record_logs),
)


@dataclass
class Tally:
    created: int = 0
    duplicates: int = 0
    updated: int = 0  # model prices only: rows this run changed


def seed_prices() -> Tally:
    """Create or update the demo models' prices (admin data, not ingest, so written
    directly). A price already as wanted counts as a duplicate."""
    tally = Tally()
    existing = {p.model_name: p for p in ModelPrice.objects.filter(model_name__in=list(MODEL_BY_NAME))}
    for model in MODELS:
        wanted = {
            "input_per_million": Decimal(model.input_per_million),
            "output_per_million": Decimal(model.output_per_million),
            "currency": "USD",
        }
        price = existing.get(model.name)
        if price is None:
            ModelPrice.objects.create(model_name=model.name, **wanted)
            tally.created += 1
        elif any(getattr(price, k) != v for k, v in wanted.items()):
            for name, value in wanted.items():
                setattr(price, name, value)
            price.save(update_fields=[*wanted, "updated_at"])
            tally.updated += 1
        else:
            tally.duplicates += 1
    return tally


def validated(kind: Kind, records: list[dict]) -> list[dict]:
    """The records as the ingest endpoint would hand them to the service: run
    through the endpoint's own validation."""
    valid, errors = validate_records(kind.serializer, records)
    if errors:
        # A generator bug, not bad input: say exactly which record and why.
        index = errors[0]["index"]
        raise CommandError(f"generated {kind.label} record #{index} is invalid: {errors[0]['errors']}: {records[index]}")
    return valid


def demo_days(*, days: int, today: date) -> list[date]:
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


class _ProgressStream:
    """Lets tqdm draw through a command's OutputWrapper, which would otherwise
    append a newline to each of tqdm's carriage-return redraws and, on a
    terminal, paint stderr in the error colour."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, style_func=_plain, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


def _plain(text: str) -> str:
    return text


class Command(BaseCommand):
    help = (
        "Load realistic demo data (LLM calls, tool calls, chats and messages, logs of every type, "
        "model prices) for the last DAYS days, through the ingest code path. Deterministic and "
        "idempotent: running it again creates nothing new; on a later day it adds the new days. "
        "Never use it on a database with real data: the demo relay keys are public."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days", type=int, default=30, help="Days back from today, today included (default 30)."
        )
        parser.add_argument(
            "--scale", type=int, default=1, help="Volume multiplier (default 1: a few thousand LLM calls a month)."
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args, days: int, scale: int, no_progress: bool, verbosity: int, **options) -> None:
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}.")
        if not 1 <= scale <= MAX_SCALE:
            raise CommandError(f"--scale must be between 1 and {MAX_SCALE}.")
        now = _now()
        tz = ZoneInfo(settings.STATS_TIME_ZONE)
        dates = demo_days(days=days, today=now.astimezone(tz).date())
        if verbosity >= 1:
            self.stdout.write(
                f"Seeding demo data for {dates[0]}..{dates[-1]} ({settings.STATS_TIME_ZONE}), "
                f"scale {scale}, up to {_iso(now)}."
            )

        tallies: dict[str, Tally] = {"model_prices": seed_prices()}
        tallies.update({kind.name: Tally() for kind in KINDS})
        pending: dict[str, list[dict]] = {kind.name: [] for kind in KINDS}

        def store(kind: Kind, *, final: bool = False) -> None:
            records = pending[kind.name]
            while len(records) >= BATCH_SIZE or (final and records):
                batch = records[:BATCH_SIZE]
                del records[:BATCH_SIZE]
                result = store_batch(kind.store, validated(kind, batch))
                tallies[kind.name].created += result.created
                tallies[kind.name].duplicates += result.duplicates

        show = not no_progress and verbosity >= 1 and self.stderr.isatty()
        progress = tqdm(dates, unit="day", file=_ProgressStream(self.stderr), disable=not show, dynamic_ncols=True)
        with progress:
            # Day by day, so memory stays flat however large --days x --scale is.
            for day in progress:
                plan = DemoDay(day, scale, tz)
                for kind in KINDS:
                    pending[kind.name].extend(plan.records(kind.name, until=now))
                    store(kind)
                progress.set_postfix(created=sum(t.created for t in tallies.values()), refresh=False)
            for kind in KINDS:
                store(kind, final=True)

        if verbosity >= 2:
            for user in GATEWAY_USERS:
                for name in user.keys:
                    self.stdout.write(f"relay key {user.name}/{name}: {relay_key(user.name, name)}")
        if verbosity >= 1:
            self.stdout.write(summary_line(tallies))


def summary_line(tallies: dict[str, Tally]) -> str:
    labels = {kind.name: kind.label for kind in KINDS} | {"model_prices": "model prices"}
    parts = []
    for name, t in tallies.items():
        updated = f", {t.updated} updated" if t.updated else ""
        parts.append(f"{labels[name]} {t.created} created{updated}, {t.duplicates} duplicates")
    created = sum(t.created for t in tallies.values())
    duplicates = sum(t.duplicates for t in tallies.values())
    return f"Demo data: created {created}, duplicates {duplicates} ({'; '.join(parts)})."
