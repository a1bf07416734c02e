"""Usage endpoints."""

from __future__ import annotations

from statsite.api.schema import ingest_schema
from statsite.ingest import BatchIngestView
from usage.api.serializers import ToolCallRecordSerializer
from usage.services import record_tool_calls


@ingest_schema("ingest_tool_calls", "Record tool calls", ToolCallRecordSerializer)
class ToolCallIngestView(BatchIngestView):
    record_serializer_class = ToolCallRecordSerializer

    def store(self, records):
        return record_tool_calls(records)
