"""The OpenAPI schema and the offline Swagger UI."""

from __future__ import annotations

import re

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
    # Offline: every script, style sheet and link comes from this server, none from a CDN.
    # (Not a search for "cdn": the page carries a random CSRF token, which may hold it.)
    addresses = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert addresses
    assert all(a.startswith("/") and not a.startswith("//") for a in addresses), addresses
    assert "://" not in html  # no absolute address anywhere, scripts included
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
