"""Who uses a benchmarked statsite, and how: the population behind every bench row.

Pure Python (no Django, no database) and a function of the seed alone, so the
generator's worker processes draw the stored facts from it and the harness draws
its ingest batches from the very same distributions.

The shape, chosen so that no query meets the unrealistic case of every account
using every model or every person writing in every chat:

- Accounts (1,000) are Zipf-active (weight 1/rank^0.8): the busiest makes about 6%
  of the calls and the ten busiest about a quarter. Each has a group (15% "vip"), an
  address, and 1-5 favourite models drawn by the models' popularity; 95% of its
  calls use a favourite (the first most), the rest any model by popularity.
- Models (50) are Zipf-popular (1/rank^1.2). Each has a home channel that routes
  80% of its calls; the rest spread over the 20 channels.
- Relay keys (5,000) each belong to one account: every account has one, the others
  go to accounts in proportion to their activity. An account's calls use its own
  keys, its first key most. Keys are named per account ("default", "prod", ...),
  so one name is shared by many accounts, as in a gateway.
- People (2,000 chat participants): the first 1,000 are the accounts themselves
  (participant user_id = account username). Chattiness is Zipf (1/rank^0.7).
- Chats (200): a quarter private (exactly one peer, named after them), the rest
  groups of skewed size (Pareto: most a handful of members, a few over a hundred),
  members drawn by chattiness. A chat's activity grows with its size.
- A message's chat is drawn by activity; the bot writes half of the messages of a
  private chat and a quarter of a group's, stored as ingest stores them (sent by the
  bot, its own participant as sender); any other message is written by a member of
  the chat, by chattiness.
- LLM calls: account by activity, then model, key and channel as above; 5% fail
  (type 4, no completion tokens, no quota). 30% of the calls of an account that is
  in some chat name one of its chats (and come from the bot's modules).
- Tool calls (10% of calls): account by the same skew, tool by popularity, with a
  failure rate, duration and price per tool; chats as for LLM calls.
- Other logs (3% of calls): top-ups and manage actions of accounts, error logs with
  no model (not LLM calls), system events at every level.
- Time: a daily rhythm (quiet nights, busy afternoons) and a weekly one (quieter
  weekends).
"""

from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import NamedTuple

ACCOUNTS = 1000
RELAY_KEYS = 5000
MODELS = 50
CHANNELS = 20
PEOPLE = 2000
CHATS = 200
PRIVATE_EVERY = 4  # every fourth chat is private
MAX_GROUP_SIZE = 300

FAILURE_RATE = 0.05
FAVOURITE_SHARE = 0.95
HOME_CHANNEL_SHARE = 0.80
CHAT_CALL_SHARE = 0.30
VIP_SHARE = 0.15
STREAM_SHARE = 0.60
BOT_SHARE = {"private": 0.5, "group": 0.25}

TOOL_CALL_SHARE = 0.10
MESSAGE_SHARE = 0.50
OTHER_LOG_SHARE = 0.03

KEY_NAMES = ("default", "prod", "dev", "staging", "ci", "batch", "test", "backup")
BOT_USER_ID = "bot"
BOT_NICKNAME = "Assistant"

# (module, request type): calls in a chat come from the bot's modules, the others from
# gateway clients; a module is the one sent, else the request type up to its first dot.
BOT_MODULES = (("chat", "chat.reply"), ("planner", "planner.step"), ("memory", "memory.summarize"))
GATEWAY_MODULES = (("chat", "chat.completions"), ("embeddings", "embeddings"))
BOT_MODULE_CUM = (6.0, 9.0, 10.0)
GATEWAY_MODULE_CUM = (85.0, 100.0)


@dataclass(frozen=True)
class Tool:
    tool_id: str
    name: str
    median_ms: float
    failure_rate: float
    cost_units: int  # 1e-8 currency units per successful call
    args: str  # JSON text


TOOLS = (
    Tool("web_search", "Web search", 1800, 0.05, 500_000, '{"q": "django rollups"}'),
    Tool("get_weather", "Weather", 400, 0.03, 200_000, '{"city": "Beijing"}'),
    Tool("get_time", "Current time", 15, 0.0, 0, "{}"),
    Tool("calculator", "Calculator", 10, 0.01, 0, '{"expr": "1234 * 5678"}'),
    Tool("memory.save", "Save memory", 60, 0.01, 0, '{"text": "likes tea"}'),
    Tool("memory.search", "Search memory", 90, 0.01, 0, '{"q": "tea"}'),
    Tool("shouji_query", "手机号码归属地查询", 300, 0.02, 100_000, '{"shouji": "13812345678"}'),
    Tool("translate", "Translate", 700, 0.02, 100_000, '{"to": "en"}'),
    Tool("image_gen", "Image generation", 8000, 0.08, 4_000_000, '{"prompt": "a cat in a hat"}'),
    Tool("github.create_issue", "GitHub: create issue", 1200, 0.04, 0, '{"repo": "acme/app"}'),
)

OTHER_LOG_KINDS = (1, 3, 4, 5, 5, 5)
SYSTEM_LEVELS = ("debug", "info", "info", "warn")


def zipf_cum(n: int, exponent: float) -> list[float]:
    """Cumulative weights 1/rank^exponent of ranks 1..n (for `pick`)."""
    return list(accumulate(1 / (rank + 1) ** exponent for rank in range(n)))


def pick(random_: Callable[[], float], cum: Sequence[float]) -> int:
    """An index drawn by cumulative weights; bisect, as random.choices does, without its per-call set-up."""
    return bisect(cum, random_() * cum[-1], 0, len(cum) - 1)


def weighted_sample(rng: random.Random, weights: Sequence[float], k: int) -> list[int]:
    """K distinct indexes drawn in proportion to WEIGHTS (Efraimidis-Spirakis keys), heaviest draw first."""
    keyed = sorted(((rng.random() ** (1 / w), i) for i, w in enumerate(weights)), reverse=True)
    return [i for _, i in keyed[:k]]


def hour_weights(start: datetime, hours: int) -> list[float]:
    """Traffic by hour: quiet at night, busy in the afternoon, quieter at weekends."""
    weights = []
    for h in range(hours):
        moment = start + timedelta(hours=h)
        daily = 0.25 + 0.75 * max(0.0, math.sin(math.pi * (moment.hour - 6) / 16)) if 6 <= moment.hour <= 22 else 0.15
        weekly = 0.6 if moment.weekday() >= 5 else 1.0
        weights.append(daily * weekly)
    return weights


def relay_key(seed: int, index: int) -> str:
    """The raw value of relay key INDEX: derived, so the harness can use keys it never stored."""
    return "sk-" + hashlib.sha256(f"statsite-bench:{seed}:{index}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Account:
    username: str
    group: str
    ip: str
    models: tuple[int, ...]  # favourite models, most used first
    model_cum: tuple[float, ...]
    keys: tuple[int, ...]  # own relay keys, most used first
    key_cum: tuple[float, ...]
    chats: tuple[int, ...]  # chats the account writes in as a participant


@dataclass(frozen=True)
class Key:
    owner: int
    name: str
    raw: str


@dataclass(frozen=True)
class Chat:
    chat_id: str
    kind: str
    name: str
    members: tuple[int, ...]  # people, by index
    member_cum: tuple[float, ...]
    bot_share: float


class LLMCall(NamedTuple):
    account: int
    model: int
    key: int
    channel: int  # index; the channel id is index + 1
    ok: bool
    prompt: int
    completion: int
    latency_ms: int
    stream: bool
    chat: int | None
    module: str
    request_type: str


class ToolUse(NamedTuple):
    account: int
    tool: int
    ok: bool
    duration_ms: int
    chat: int | None


class Message(NamedTuple):
    chat: int
    sender: int | None  # a person's index; None: the bot
    text_length: int


class OtherLog(NamedTuple):
    kind: int
    account: int | None
    level: str
    quota: int


class Population:
    """Accounts, keys, models, channels, people and chats of one seed, and draws of facts from them."""

    def __init__(self, seed: int = 42) -> None:
        self.seed = seed
        rng = random.Random(f"population:{seed}")
        self.models = [f"model-{i:02d}" for i in range(MODELS)]
        self.model_cum = zipf_cum(MODELS, 1.2)
        # Prices per 1M tokens rise with rank (the popular models are the cheap ones);
        # in 1e-8 units per token they are integers, so costs are exact.
        self.model_prices = [(f"{0.1 + i * 0.3:.1f}", f"{0.4 + i * 1.2:.1f}") for i in range(MODELS)]
        self.model_token_units = [(10 + 30 * i, 40 + 120 * i) for i in range(MODELS)]
        self.home_channel = [(i * 7) % CHANNELS for i in range(MODELS)]
        self.channels = [f"channel-{i + 1:02d}" for i in range(CHANNELS)]
        self.account_cum = zipf_cum(ACCOUNTS, 0.8)
        self.people = [f"user{i:04d}" for i in range(PEOPLE)]
        self.person_cum = zipf_cum(PEOPLE, 0.7)
        self.tool_cum = zipf_cum(len(TOOLS), 1.0)
        self.keys = self._keys(rng)
        self.chats = self._chats(rng)
        self.accounts = self._accounts(rng)

    def _keys(self, rng: random.Random) -> list[Key]:
        owners = list(range(ACCOUNTS)) + [pick(rng.random, self.account_cum) for _ in range(RELAY_KEYS - ACCOUNTS)]
        owned: dict[int, int] = {}
        keys = []
        for index, owner in enumerate(owners):
            ordinal = owned.get(owner, 0)
            owned[owner] = ordinal + 1
            name = KEY_NAMES[ordinal] if ordinal < len(KEY_NAMES) else f"key-{ordinal}"
            keys.append(Key(owner, name, relay_key(self.seed, index)))
        return keys

    def _chats(self, rng: random.Random) -> list[Chat]:
        chattiness = [1 / (rank + 1) ** 0.7 for rank in range(PEOPLE)]
        private_count = len(range(0, CHATS, PRIVATE_EVERY))
        peers = iter(weighted_sample(rng, chattiness, private_count))
        chats = []
        for i in range(CHATS):
            if i % PRIVATE_EVERY == 0:
                peer = next(peers)
                chats.append(Chat(f"private_{self.people[peer]}", "private", f"Person {peer}", (peer,), (1.0,),
                                  BOT_SHARE["private"]))
                continue
            size = min(MAX_GROUP_SIZE, max(3, int(3 * rng.paretovariate(1.1))))
            members = tuple(weighted_sample(rng, chattiness, size))
            chats.append(Chat(f"chat{i:04d}", "group", f"Group {i}", members,
                              tuple(accumulate(chattiness[m] for m in members)), BOT_SHARE["group"]))
        self.chat_cum = list(accumulate(
            (len(c.members) ** 0.7 if c.kind == "group" else 0.5) * rng.lognormvariate(0, 0.8) for c in chats
        ))
        return chats

    def _accounts(self, rng: random.Random) -> list[Account]:
        keys_of: dict[int, list[int]] = {}
        for index, key in enumerate(self.keys):
            keys_of.setdefault(key.owner, []).append(index)
        chats_of: dict[int, list[int]] = {}
        for index, chat in enumerate(self.chats):
            for member in chat.members:
                chats_of.setdefault(member, []).append(index)
        accounts = []
        for a in range(ACCOUNTS):
            favourites = rng.choices((1, 2, 3, 4, 5), weights=(2, 4, 3, 2, 1))[0]
            models: list[int] = []
            while len(models) < favourites:
                model = pick(rng.random, self.model_cum)
                if model not in models:
                    models.append(model)
            keys = keys_of[a]
            accounts.append(Account(
                username=self.people[a],
                group="vip" if rng.random() < VIP_SHARE else "default",
                ip=f"10.{a // 250}.{a % 250}.{rng.randrange(1, 255)}",
                models=tuple(models), model_cum=tuple(zipf_cum(len(models), 1.5)),
                keys=tuple(keys), key_cum=tuple(zipf_cum(len(keys), 1.0)),
                chats=tuple(chats_of.get(a, ())),
            ))
        return accounts

    def busiest_group(self) -> int:
        """The group chat with the most messages expected."""
        weights = [b - a for a, b in zip([0.0, *self.chat_cum], self.chat_cum)]
        return max((i for i, c in enumerate(self.chats) if c.kind == "group"), key=weights.__getitem__)

    def chat_of(self, account: Account, random_: Callable[[], float]) -> int | None:
        """One of the account's chats for a call made in a chat, else None."""
        if account.chats and random_() < CHAT_CALL_SHARE:
            return account.chats[int(random_() * len(account.chats))]
        return None

    def llm_call(self, rng: random.Random) -> LLMCall:
        r = rng.random
        a = pick(r, self.account_cum)
        account = self.accounts[a]
        model = account.models[pick(r, account.model_cum)] if r() < FAVOURITE_SHARE else pick(r, self.model_cum)
        channel = self.home_channel[model] if r() < HOME_CHANNEL_SHARE else int(r() * CHANNELS)
        ok = r() >= FAILURE_RATE
        chat = self.chat_of(account, r)
        if chat is None:
            module, request_type = GATEWAY_MODULES[pick(r, GATEWAY_MODULE_CUM)]
        else:
            module, request_type = BOT_MODULES[pick(r, BOT_MODULE_CUM)]
        return LLMCall(
            account=a, model=model, key=account.keys[pick(r, account.key_cum)], channel=channel, ok=ok,
            prompt=20 + int(r() * 3980), completion=5 + int(r() * 1495) if ok else 0,
            latency_ms=int(rng.lognormvariate(7.0, 0.7)), stream=r() < STREAM_SHARE, chat=chat,
            module=module, request_type=request_type,
        )

    def cost_units(self, call: LLMCall) -> int:
        """The call's cost in 1e-8 currency units, as the model price table prices it."""
        per_prompt, per_completion = self.model_token_units[call.model]
        return call.prompt * per_prompt + call.completion * per_completion

    def tool_use(self, rng: random.Random) -> ToolUse:
        r = rng.random
        a = pick(r, self.account_cum)
        tool = pick(r, self.tool_cum)
        return ToolUse(a, tool, r() >= TOOLS[tool].failure_rate,
                       int(TOOLS[tool].median_ms * rng.lognormvariate(0, 0.6)), self.chat_of(self.accounts[a], r))

    def message(self, rng: random.Random) -> Message:
        r = rng.random
        c = pick(r, self.chat_cum)
        chat = self.chats[c]
        sender = None if r() < chat.bot_share else chat.members[pick(r, chat.member_cum)]
        return Message(c, sender, 1 + int(r() * 300))

    def other_log(self, rng: random.Random) -> OtherLog:
        r = rng.random
        kind = OTHER_LOG_KINDS[int(r() * len(OTHER_LOG_KINDS))]
        account = pick(r, self.account_cum) if kind in (1, 3) else None
        level = "error" if kind == 4 else "info" if kind != 5 else SYSTEM_LEVELS[int(r() * len(SYSTEM_LEVELS))]
        return OtherLog(kind, account, level, int(r() * 10_000_000) if kind == 1 else 0)
