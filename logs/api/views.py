"""Log endpoints."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

from logs.api.serializers import LLMCallRecordSerializer, LogRecordSerializer
from logs.services import record_llm_calls, record_logs
from statsite.api.schema import ingest_schema
from statsite.ingest import BatchIngestView

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
