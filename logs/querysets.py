"""Chainable filters on the log table (admin, commands and API all use them)."""

from __future__ import annotations

from statsite.querysets import TimeWindowQuerySet


class LogQuerySet(TimeWindowQuerySet):
    def of_type(self, log_type: int):
        return self.filter(type=log_type)

    def consume(self):
        return self.filter(type=2)

    def errors(self):
        return self.filter(type=4)

    def llm_calls(self):
        """Successful and failed LLM calls (types 2 and 4 with a model)."""
        return self.filter(type__in=(2, 4)).exclude(model_name="")
