"""DELETE /api/log/?target_timestamp=: delete the logs created before a time, in batches."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from logs.api import views
from logs.models import Log
from tests.logs.logapi_support import (  # noqa: F401 - fresh_throttles is an autouse fixture
    DOC_START,
    at,
    fresh_throttles,
    many_calls,
    record_calls,
    record_tools,
    unix,
)
from usage.models import ToolCall

LOGS = "/api/log/"
MESSAGE = "target timestamp is required"


@pytest.mark.django_db
def test_the_documents_example_deletes_what_is_older_and_answers_the_count(api, admin_headers):
    record_calls({"created_at": at(-2)}, {"created_at": at(-0.5)}, {"created_at": at(0)}, {"created_at": at(1)})
    response = api.delete(f"{LOGS}?target_timestamp={DOC_START}", **admin_headers)
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "", "data": 2}
    # Created at the target second or later: kept.
    assert sorted(Log.objects.values_list("created_at", flat=True)) == [at(0), at(1)]


@pytest.mark.django_db
def test_nothing_older_deletes_nothing(api, admin_headers):
    record_calls({"created_at": at(10)})
    response = api.delete(LOGS, QUERY_STRING=f"target_timestamp={DOC_START}", **admin_headers)
    assert response.json()["data"] == 0 and Log.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "target_timestamp=", "target_timestamp=abc", "target_timestamp=-5",
                                   "target_timestamp=0", "target_timestamp=1.5", "target_timestamp=99999999999999",
                                   "timestamp=1640908800"])  # fmt: skip
def test_a_missing_or_invalid_timestamp_deletes_nothing_and_answers_400(api, admin_headers, query):
    record_calls({"created_at": at(-10)})
    response = api.delete(f"{LOGS}?{query}", **admin_headers)
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": MESSAGE}
    assert Log.objects.count() == 1


@pytest.mark.django_db
def test_it_deletes_in_batches_of_bounded_size(api, admin_headers, monkeypatch):
    many_calls(30)
    monkeypatch.setattr(views.LogViewSet, "purge_batch_size", 7)
    with CaptureQueriesContext(connection) as queries:
        response = api.delete(f"{LOGS}?target_timestamp={unix(at(30))}", **admin_headers)
    assert response.json()["data"] == 30 and not Log.objects.exists()
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) >= 5  # 7 + 7 + 7 + 7 + 2, and a last one that finds nothing


@pytest.mark.django_db
def test_it_deletes_logs_only(api, admin_headers):
    record_calls({"created_at": at(-10)})
    record_tools({"created_at": at(-10)})
    api.delete(f"{LOGS}?target_timestamp={DOC_START}", **admin_headers)
    assert not Log.objects.exists() and ToolCall.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.skipif(not settings.IS_POSTGRES, reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_ingest_during_a_delete_loses_nothing_newer_than_the_cutoff(admin_headers, service_headers, monkeypatch):
    old = 3000
    many_calls(old)  # 2021: far older than the cutoff
    cutoff = timezone.now() - timedelta(hours=1)
    monkeypatch.setattr(views.LogViewSet, "purge_batch_size", 50)

    stop = threading.Event()
    sent: list[int] = []  # records ingested (all created "now", after the cutoff)
    failures: list[BaseException] = []
    overlap: list[int] = []  # how many records had been ingested at each purge batch

    real_purge = views.purge

    def observed_purge(kind, **kwargs):
        def progress(count: int) -> None:
            overlap.append(len(sent))
            time.sleep(0.002)  # let the ingesting thread in between batches

        return real_purge(kind, progress=progress, **kwargs)

    monkeypatch.setattr(views, "purge", observed_purge)

    def ingest() -> None:
        client = APIClient()
        try:
            batch = 0
            while not stop.is_set():
                records = [{"request_id": f"new-{batch}-{i}", "model_name": "gpt-4"} for i in range(10)]
                response = client.post("/api/ingest/llm-calls", records, format="json", **service_headers)
                assert response.status_code == 201, response.content
                sent.extend([1] * 10)
                batch += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    writer = threading.Thread(target=ingest)
    writer.start()
    while not sent and writer.is_alive():
        time.sleep(0.01)
    response = APIClient().delete(f"{LOGS}?target_timestamp={unix(cutoff)}", **admin_headers)
    time.sleep(0.05)
    stop.set()
    writer.join(timeout=60)

    assert not failures, failures
    assert response.status_code == 200 and response.json()["data"] == old
    assert overlap[0] < overlap[-1], "no ingest happened while the delete ran"
    assert not Log.objects.filter(created_at__lt=cutoff).exists()
    assert Log.objects.filter(created_at__gte=cutoff).count() == len(sent)
