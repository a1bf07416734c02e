"""The OpenAPI schema and the offline Swagger UI."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_is_served_as_openapi_3_and_lists_the_ingest_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in ("/api/ingest/llm-calls", "/api/ingest/tool-calls", "/api/ingest/messages", "/api/ingest/logs"):
        assert "post" in schema["paths"][path]
    assert {"ApiKey", "Bearer"} <= set(schema["components"]["securitySchemes"])


def test_swagger_ui_is_served_with_its_assets_from_this_server(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    # Offline: the UI's script comes from our static files, not a CDN.
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
