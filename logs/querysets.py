"""Chainable filters on the log table (admin, commands and API all use them)."""

from __future__ import annotations

from django.db.models import Q

from statsite.querysets import TimeWindowQuerySet

# The type numbers are the gateway log document's (1 top-up ... 5 system). They are
# repeated here rather than imported from the model, which imports this module.
TOPUP, CONSUME, MANAGE, ERROR, SYSTEM = 1, 2, 3, 4, 5

# What a search keyword may call a type: its number, its English name (the model's
# labels) or the name the gateway log document gives it in Chinese.
TYPE_NAMES: dict[str, int] = {
    "topup": TOPUP,
    "consume": CONSUME,
    "manage": MANAGE,
    "error": ERROR,
    "system": SYSTEM,
    "充值": TOPUP,
    "消费": CONSUME,
    "管理": MANAGE,
    "错误": ERROR,
    "系统": SYSTEM,
}


def type_named(keyword: str) -> int | None:
    """The log type KEYWORD names (`2`, `consume`, `Consume`, `消费`), or None."""
    word = keyword.strip().lower()
    if word.isascii() and word.isdigit():
        number = int(word)
        return number if TOPUP <= number <= SYSTEM else None
    return TYPE_NAMES.get(word)


class LogQuerySet(TimeWindowQuerySet):
    def of_type(self, log_type: int):
        return self.filter(type=log_type)

    def consume(self):
        return self.filter(type=CONSUME)

    def errors(self):
        return self.filter(type=ERROR)

    def system(self):
        """What the bot console calls system logs: error and system rows."""
        return self.filter(type__in=(ERROR, SYSTEM))

    def at_level(self, level: str):
        return self.filter(level=level)

    def llm_calls(self):
        """Successful and failed LLM calls: consume rows, and error rows that name a model
        (the rows the LLM rollups count; see usage.rollups)."""
        return self.filter(Q(type=2) | (Q(type=4) & ~Q(model_name="")))

    def of_relay_key(self, key):
        return self.filter(token=key)

    def matching(
        self,
        *,
        username: str | None = None,
        token_name: str | None = None,
        model_name: str | None = None,
        channel: int | None = None,
        group: str | None = None,
    ):
        """The gateway's dimension filters, each an exact match; None (and channel 0,
        which the gateway uses for "any channel") leaves a dimension open."""
        qs = self
        if username is not None:
            qs = qs.filter(username=username)
        if token_name is not None:
            qs = qs.filter(token_name=token_name)
        if model_name is not None:
            qs = qs.filter(model_name=model_name)
        if channel:
            qs = qs.filter(channel_id=channel)
        if group is not None:
            qs = qs.filter(group=group)
        return qs

    def search(self, keyword: str):
        """Rows whose type KEYWORD names, or whose content contains it (any case).
        The keyword is plain text: `%`, `_` and quotes match themselves."""
        condition = Q(content__icontains=keyword)
        log_type = type_named(keyword)
        if log_type is not None:
            condition |= Q(type=log_type)
        return self.filter(condition)
