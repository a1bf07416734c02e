"""OpenAPI pieces shared by the endpoints: envelopes and error shapes, so the
generated schema tells the truth about every response."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import serializers


class DetailErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class IngestResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class RecordErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the bad record in the request (0 for a single object).")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), help_text="Field name → messages."
    )


class IngestErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = RecordErrorSerializer(many=True, required=False)


INGEST_RESPONSES = {
    201: IngestResultSerializer,
    400: IngestErrorSerializer,
    401: DetailErrorSerializer,
    403: DetailErrorSerializer,
    413: DetailErrorSerializer,
    503: DetailErrorSerializer,
}


def ingest_request(record_serializer: type[serializers.Serializer]) -> PolymorphicProxySerializer:
    """One record, or an array of records."""
    name = record_serializer.__name__.removesuffix("Serializer")
    return PolymorphicProxySerializer(
        component_name=f"{name}Batch",
        serializers=[record_serializer, record_serializer(many=True)],
        resource_type_field_name=None,
        many=False,
    )


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "statsite.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "statsite.authentication.BearerAuthentication"
    name = "Bearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal access token (sst_…) or a service key (ssk_… or from STATSITE_API_KEYS).",
        }


def ingest_schema(operation_id: str, summary: str, record_serializer: type[serializers.Serializer], **kwargs):
    """Class decorator documenting an ingest view's POST."""
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            tags=["ingest"],
            summary=summary,
            request=ingest_request(record_serializer),
            responses=INGEST_RESPONSES,
            **kwargs,
        )
    )
