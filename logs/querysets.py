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


# What makes a log row an LLM call (is_llm_call says the same of a row in hand).
LLM_CALL = Q(type=CONSUME) | (Q(type=ERROR) & ~Q(model_name=""))


def is_llm_call(log_type: int, model_name: str) -> bool:
    return log_type == CONSUME or (log_type == ERROR and model_name != "")


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
        return self.filter(LLM_CALL)

    def not_llm_calls(self):
        """Every other row: top-ups, management, system events, errors that name no model
        (the rows the event rollups count)."""
        return self.exclude(LLM_CALL)

    def of_relay_key(self, key):
        return self.filter(token=key)

    def search(self, keyword: str):
        """Rows whose type KEYWORD names, or whose content contains it (any case).
        The keyword is plain text: `%`, `_` and quotes match themselves."""
        condition = Q(content__icontains=keyword)
        log_type = type_named(keyword)
        if log_type is not None:
            condition |= Q(type=log_type)
        return self.filter(condition)
