"""Abuse limits: throttles in the envelope, CORS only on the public lookup, CSRF on
the admin, security headers, and HTTPS hardening with STATSITE_HTTPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import issue_token

ROOT = Path(__file__).resolve().parents[2]
RELAY_KEY = "sk-abuse-relay-key-0123456789"


@pytest.fixture
def relay_key(db, service_headers) -> str:
    response = Client().post(
        "/api/ingest/llm-calls", {"model_name": "m", "username": "u", "token_key": RELAY_KEY},
        content_type="application/json", **service_headers,
    )
    assert response.status_code == 201
    return RELAY_KEY


@pytest.fixture
def tight_rates(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"log_token": "3/min", "log_search": "2/min"},
    }


def test_the_public_token_lookup_is_throttled_per_address_in_the_envelope(relay_key, tight_rates):
    client = Client()
    answers = [client.get(f"/api/log/token?key={relay_key}", REMOTE_ADDR="10.0.0.1") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert 1 <= int(refused["Retry-After"]) <= 60
    body = refused.json()
    assert body["success"] is False and "throttled" in body["message"].lower()
    # Another address has its own allowance; a forged X-Forwarded-For is not another address.
    assert client.get(f"/api/log/token?key={relay_key}", REMOTE_ADDR="10.0.0.2").status_code == 200
    forged = client.get(f"/api/log/token?key={relay_key}", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert forged.status_code == 429


def test_unknown_keys_count_against_the_allowance_too(db, tight_rates):
    """Guessing keys is what the throttle is for: refusals are counted as well."""
    client = Client()
    codes = [client.get(f"/api/log/token?key=sk-guess-{n}", REMOTE_ADDR="10.0.0.3").status_code for n in range(4)]
    assert codes == [401, 401, 401, 429]


@pytest.mark.parametrize("path", ["/api/log/search?keyword=a", "/api/log/self/search?keyword=a"])
def test_searches_are_throttled_per_account(path, admin_headers, user_a_headers, tight_rates):
    headers = admin_headers if "self" not in path else user_a_headers
    codes = [Client().get(path, **headers).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


# --- CORS ---------------------------------------------------------------------------------------------------


def test_the_public_lookup_allows_any_origin_without_credentials(relay_key):
    response = Client().get(f"/api/log/token?key={relay_key}", HTTP_ORIGIN="https://shop.example")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response


def test_the_public_lookup_answers_a_preflight(db):
    response = Client().options(
        "/api/log/token", HTTP_ORIGIN="https://shop.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response["Access-Control-Allow-Methods"]
    assert "authorization" in response["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize(
    "path", ["/api/log/", "/api/log/self", "/api/data/self", "/api/ingest/llm-calls", "/agent/stats", "/llm/stats",
             "/api/stats", "/api/system/status", "/api/log/token/../", "/admin/login/"],
)
def test_no_other_endpoint_is_cross_origin(db, path, admin_headers):
    client = Client()
    simple = client.get(path, HTTP_ORIGIN="https://evil.example", **admin_headers)
    assert "Access-Control-Allow-Origin" not in simple
    preflight = client.options(
        path, HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )
    assert "Access-Control-Allow-Origin" not in preflight


# --- CSRF -------------------------------------------------------------------------------------------------


def test_the_admin_login_needs_the_csrf_token(db, admin):
    admin.set_password("s3cret-pass-word")
    admin.save()
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "root", "password": "s3cret-pass-word"})
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/admin/purge/", "/admin/statsite/accesstoken/add/"])
def test_admin_forms_refuse_a_post_without_the_csrf_token(db, admin, path):
    admin.is_superuser = True
    admin.save()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post(path, {"kind": "logs", "before": "2000-01-01", "name": "x"})
    assert response.status_code == 403
    # The same page renders for a GET: the 403 above is the CSRF check, not a missing page.
    assert client.get(path).status_code == 200


def test_a_session_post_to_the_api_needs_the_csrf_token(db, admin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post("/api/ingest/logs", {"type": 5}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_a_token_post_needs_no_csrf_token(db, admin):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/ingest/logs", {"type": 5}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {issue_token(admin)}")
    assert response.status_code == 201


# --- security headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/api/system/status", "/admin/login/", "/api/docs/", "/api/log/token"])
def test_every_answer_carries_the_security_headers(db, path):
    response = Client().get(path)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    # Without STATSITE_HTTPS there is no HSTS (it would pin plain-http development hosts).
    assert "Strict-Transport-Security" not in response


HTTPS_PROBE = """
import json
from django.conf import settings
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
plain = client.get("/api/system/status")
healthz = client.get("/healthz")
proxied = client.get("/api/log/token", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "plain_status": plain.status_code, "plain_location": plain.get("Location", ""),
    "healthz_status": healthz.status_code,
    "proxied_status": proxied.status_code, "hsts": proxied.get("Strict-Transport-Security", ""),
    "session_secure": settings.SESSION_COOKIE_SECURE, "csrf_secure": settings.CSRF_COOKIE_SECURE,
    "session_httponly": settings.SESSION_COOKIE_HTTPONLY,
}))
"""


def test_with_statsite_https_the_app_redirects_pins_https_and_secures_cookies(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    env.update(STATSITE_HTTPS="true", STATSITE_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
               ALLOWED_HOSTS="testserver")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", HTTPS_PROBE], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["plain_status"] == 301 and found["plain_location"].startswith("https://")
    # Load balancers probe plain http.
    assert found["healthz_status"] in (200, 503)
    # Behind the TLS proxy (X-Forwarded-Proto: https) the request is served, with HSTS.
    assert found["proxied_status"] == 400
    assert found["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert found["session_secure"] and found["csrf_secure"] and found["session_httponly"]
