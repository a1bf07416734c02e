"""`GET /api/system/health` and the load balancers' `/healthz`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connections
from django.db.utils import load_backend
from django.test import override_settings

from statsite.system import snapshots, sources
from usage.models import Channel

pytestmark = pytest.mark.django_db

URL = "/api/system/health"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_source_memory():
    sources.forget()
    yield
    sources.forget()


def unreachable(kind: str):
    """A real connection to a database that is not there: PostgreSQL on a closed
    port, or SQLite in a folder that does not exist."""
    settings_dict = dict(connections["default"].settings_dict)
    if kind == "postgresql":
        settings_dict.update(
            ENGINE="django.db.backends.postgresql", NAME="statsite", USER="postgres", PASSWORD="",
            HOST="127.0.0.1", PORT="1", OPTIONS={"connect_timeout": 3},
        )
    else:
        settings_dict.update(ENGINE="django.db.backends.sqlite3", NAME="/nonexistent/dir/db.sqlite3", OPTIONS={})
    return load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias=f"unreachable-{kind}")


def health(api, headers):
    response = api.get(URL, **headers)
    body = response.json()
    assert body["success"] is True
    return response.status_code, body["data"]


def test_a_healthy_server_answers_200_with_every_check(api, service_headers):
    status, data = health(api, service_headers)
    assert status == 200
    assert data["healthy"] is True
    assert set(data["checks"]) == {"database", "bot", "channels"}
    database = data["checks"]["database"]
    assert database["status"] == "ok"
    assert isinstance(database["latency"], float) and 0 <= database["latency"] < 5000
    # No ingest yet: idle, which is no failure. No channel yet: nothing to fail.
    assert data["checks"]["bot"] == {"status": "idle"}
    assert data["checks"]["channels"] == {"status": "ok", "available": 0}


def test_the_bot_check_is_ok_once_a_client_sends_data(api, post_json, service_headers):
    assert post_json("/api/ingest/logs", {"type": 5}, **service_headers).status_code == 201
    assert health(api, service_headers)[1]["checks"]["bot"] == {"status": "ok"}


def test_channels_count_the_enabled_ones_and_fail_when_all_are_disabled(api, admin_headers):
    Channel.objects.create(id=1, name="a")
    Channel.objects.create(id=2, name="b")
    Channel.objects.create(id=3, name="c", status=Channel.Status.DISABLED)
    status, data = health(api, admin_headers)
    assert status == 200 and data["checks"]["channels"] == {"status": "ok", "available": 2}

    Channel.objects.update(status=Channel.Status.DISABLED)
    status, data = health(api, admin_headers)
    assert status == 503
    assert data["healthy"] is False
    assert data["checks"]["channels"] == {"status": "error", "available": 0}
    assert data["checks"]["database"]["status"] == "ok"


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_an_unreachable_database_is_a_quick_503_with_the_same_body(api, admin_headers, monkeypatch, kind):
    probe = unreachable(kind)
    monkeypatch.setattr(snapshots, "health_connection", lambda: probe)
    began = time.monotonic()
    status, data = health(api, admin_headers)
    assert time.monotonic() - began < 3
    assert status == 503
    assert data["healthy"] is False
    database = data["checks"]["database"]
    assert database["status"] == "error" and database["latency"] is None and database["error"]
    assert set(data["checks"]) == {"database", "bot", "channels"}


def test_healthz_needs_no_credentials_and_says_only_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")
    assert "no-cache" in response["Cache-Control"]
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_healthz_is_503_without_detail_when_the_database_is_unreachable(client, monkeypatch):
    probe = unreachable("postgresql")
    monkeypatch.setattr(snapshots, "health_connection", lambda: probe)
    response = client.get("/healthz")
    assert (response.status_code, response.content) == (503, b"unavailable")


def test_healthz_ignores_a_disabled_channel_which_is_no_reason_to_leave_rotation(client):
    Channel.objects.create(id=1, name="a", status=Channel.Status.DISABLED)
    assert client.get("/healthz").status_code == 200


def test_healthz_is_served_over_plain_http_behind_the_https_redirect(client, tmp_path):
    # What the settings module sets when STATSITE_HTTPS is on.
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_REDIRECT_EXEMPT]))"
    )
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "STATSITE_HTTPS": "true", "SECRET_KEY": "x" * 50,
                       "STATSITE_VAR_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    redirect, exempt = json.loads(shown.stdout.strip().splitlines()[-1])
    assert redirect is True
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_REDIRECT_EXEMPT=exempt):
        assert client.get("/healthz").status_code == 200
        assert client.get(URL).status_code == 301


@pytest.mark.parametrize(
    "caller, expected",
    [("nobody", 401), ("bad token", 401), ("user", 403), ("admin", 200), ("service", 200)],
)
def test_only_administrators_and_services_may_read_it(api, caller, expected, request):
    headers = {
        "nobody": lambda: {},
        "bad token": lambda: {"HTTP_AUTHORIZATION": "Bearer nonsense"},
        "user": lambda: request.getfixturevalue("user_a_headers"),
        "admin": lambda: request.getfixturevalue("admin_headers"),
        "service": lambda: request.getfixturevalue("service_headers"),
    }[caller]()
    response = api.get(URL, **headers)
    assert response.status_code == expected
    assert response.json()["success"] is (expected == 200)
