"""Chainable filters for usage facts."""

from __future__ import annotations

from statsite.querysets import TimeWindowQuerySet


class ToolCallQuerySet(TimeWindowQuerySet):
    def of_tool(self, tool: str):
        return self.filter(tool_name=tool)

    def succeeded(self, success: bool = True):
        return self.filter(success=success)
