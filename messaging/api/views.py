"""Messaging endpoints."""

from __future__ import annotations

from messaging.api.serializers import MessageRecordSerializer
from messaging.services import record_messages
from statsite.api.schema import ingest_schema
from statsite.ingest import BatchIngestView


@ingest_schema("ingest_messages", "Record chat messages", MessageRecordSerializer)
class MessageIngestView(BatchIngestView):
    record_serializer_class = MessageRecordSerializer

    def store(self, records):
        return record_messages(records)
