"""`GET /api/system/status`, and how ingest clients become its `bot`."""

from __future__ import annotations

import platform
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

import statsite
from statsite.models import IngestSource
from statsite.system import sources

pytestmark = pytest.mark.django_db

URL = "/api/system/status"
LOGS = "/api/ingest/logs"


@pytest.fixture(autouse=True)
def fresh_source_memory():
    """Each test starts with an empty table; so must this process's write memo."""
    sources.forget()
    yield
    sources.forget()


def status(api, headers) -> dict:
    response = api.get(URL, **headers)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    return body["data"]


def test_it_reports_the_process_runtime_and_memory(api, service_headers):
    data = status(api, service_headers)
    assert set(data) == {"status", "version", "uptime", "startTime", "python", "memory", "bot"}
    assert data["status"] == "running"
    assert data["version"] == statsite.__version__
    assert data["python"] == platform.python_version()
    assert isinstance(data["uptime"], int) and data["uptime"] >= 0
    assert data["startTime"].endswith("Z")
    started = parse_datetime(data["startTime"])
    assert started is not None and started <= timezone.now()
    # uptime is measured from that start.
    assert abs((timezone.now() - started).total_seconds() - data["uptime"]) <= 2
    memory = data["memory"]
    assert isinstance(memory["used"], int) and isinstance(memory["total"], int)
    assert 0 < memory["used"] < memory["total"]
    assert isinstance(memory["percentage"], float) and 0 < memory["percentage"] < 100
    assert memory["percentage"] == round(memory["used"] * 100 / memory["total"], 2)


def test_bot_is_disconnected_and_unnamed_before_any_ingest(api, admin_headers):
    assert status(api, admin_headers)["bot"] == {"connected": False, "platform": None, "uin": None}


def test_an_ingest_client_that_names_itself_becomes_the_connected_bot(api, post_json, service_headers):
    headers = {**service_headers, "HTTP_X_CLIENT_PLATFORM": "icqq", "HTTP_X_CLIENT_ACCOUNT": "123456789"}
    assert post_json(LOGS, {"type": 5, "content": "hello"}, **headers).status_code == 201
    assert status(api, service_headers)["bot"] == {"connected": True, "platform": "icqq", "uin": "123456789"}


def test_a_client_that_does_not_name_itself_refreshes_the_time_but_keeps_the_name(api, post_json, service_headers):
    IngestSource.objects.create(platform="onebot", account="42", seen_at=timezone.now() - timedelta(hours=1))
    assert status(api, service_headers)["bot"] == {"connected": False, "platform": "onebot", "uin": "42"}
    assert post_json(LOGS, {"type": 5}, **service_headers).status_code == 201
    assert status(api, service_headers)["bot"] == {"connected": True, "platform": "onebot", "uin": "42"}


def test_connected_means_an_ingest_within_the_configured_window(api, service_headers, settings):
    settings.BOT_CONNECTED_WINDOW_SECONDS = 60
    IngestSource.objects.create(platform="icqq", account="1", seen_at=timezone.now() - timedelta(seconds=90))
    assert status(api, service_headers)["bot"]["connected"] is False
    IngestSource.objects.filter(pk=1).update(seen_at=timezone.now() - timedelta(seconds=30))
    assert status(api, service_headers)["bot"]["connected"] is True


def test_a_refused_ingest_does_not_count_as_a_connection(api, post_json, service_headers):
    headers = {**service_headers, "HTTP_X_CLIENT_PLATFORM": "icqq"}
    assert post_json(LOGS, {"type": 9}, **headers).status_code == 400
    assert status(api, service_headers)["bot"]["connected"] is False
    assert not IngestSource.objects.exists()


def test_client_headers_are_cleaned_cut_and_read_as_utf8(post_json, service_headers):
    # Servers hand header bytes over decoded as Latin-1: UTF-8 text arrives mangled like this.
    as_received = "机器人\x00\x07".encode().decode("latin-1")
    headers = {**service_headers, "HTTP_X_CLIENT_PLATFORM": as_received, "HTTP_X_CLIENT_ACCOUNT": "9" * 500}
    assert post_json(LOGS, {"type": 5}, **headers).status_code == 201
    source = IngestSource.objects.get()
    assert source.platform == "机器人"
    assert source.account == "9" * 128


def test_a_busy_client_writes_its_source_at_most_every_few_seconds(post_json, service_headers):
    IngestSource.objects.create(seen_at=timezone.now() - timedelta(hours=1))
    headers = {**service_headers, "HTTP_X_CLIENT_PLATFORM": "icqq", "HTTP_X_CLIENT_ACCOUNT": "1"}
    table = IngestSource._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        for n in range(5):
            assert post_json(LOGS, {"type": 5, "content": f"n{n}"}, **headers).status_code == 201
    writes = [q["sql"] for q in queries.captured_queries if table in q["sql"]]
    assert len(writes) == 1 and writes[0].startswith("UPDATE"), writes
    # A different client is news at once, and is written.
    other = {**service_headers, "HTTP_X_CLIENT_PLATFORM": "onebot", "HTTP_X_CLIENT_ACCOUNT": "2"}
    assert post_json(LOGS, {"type": 5}, **other).status_code == 201
    assert IngestSource.objects.get().platform == "onebot"


@pytest.mark.parametrize(
    "caller, expected",
    [("nobody", 401), ("bad token", 401), ("user", 403), ("admin", 200), ("service", 200)],
)
def test_only_administrators_and_services_may_read_it(api, caller, expected, request):
    headers = {
        "nobody": {},
        "bad token": {"HTTP_AUTHORIZATION": "Bearer sst_not-a-real-token"},
        "user": request.getfixturevalue("user_a_headers") if caller == "user" else None,
        "admin": request.getfixturevalue("admin_headers") if caller == "admin" else None,
        "service": request.getfixturevalue("service_headers") if caller == "service" else None,
    }[caller]
    response = api.get(URL, **headers)
    assert response.status_code == expected
    body = response.json()
    assert body["success"] is (expected == 200)
    if expected != 200:
        assert body["error"]
