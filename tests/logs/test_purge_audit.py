"""The admin purge page leaves an audit row, reports batches, and stops in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages

from logs import admin_views
from logs.models import Log
from messaging.models import Chat, Message
from usage.models import ToolCall

CUTOFF = datetime(2025, 1, 1, tzinfo=UTC)
PAGE = "/admin/purge/"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def old_logs(db) -> list[Log]:
    return [Log.objects.create(created_at=CUTOFF - timedelta(hours=h), type=2) for h in range(1, 6)]


def confirm(client, *, kind: str = "logs", expected: int, log_type: str = "") -> object:
    return client.post(
        PAGE,
        {"stage": "confirm", "kind": kind, "before": "2025-01-01T00:00:00Z", "log_type": log_type,
         "expected": expected, "confirmation": "purge"},
        follow=True,
    )  # fmt: skip


def audit_rows():
    return list(Log.objects.filter(type=Log.Type.MANAGE))


def test_a_purge_writes_a_manage_log_naming_the_staff_member(admin_client, admin_user, old_logs):
    confirm(admin_client, expected=5)

    [row] = audit_rows()
    assert row.level == Log.Level.INFO
    assert row.username == admin_user.username and row.user == admin_user
    assert row.content == "purged 5 logs created before 2025-01-01T00:00:00Z"
    assert row.other == {
        "kind": "logs", "before": "2025-01-01T00:00:00Z", "log_type": None, "deleted": 5, "batches": 1,
        "complete": True,
    }  # fmt: skip
    assert Log.objects.exclude(type=Log.Type.MANAGE).count() == 0


def test_the_audit_names_the_log_type_and_every_kind(admin_client, old_logs):
    Log.objects.create(created_at=CUTOFF - timedelta(hours=1), type=4, success=False)
    chat = Chat.objects.create(chat_id="g1")
    ToolCall.objects.create(tool_id="t", created_at=CUTOFF - timedelta(days=1))
    Message.objects.create(chat=chat, created_at=CUTOFF - timedelta(days=1))

    confirm(admin_client, expected=1, log_type="4")
    confirm(admin_client, kind="tool-calls", expected=1)
    confirm(admin_client, kind="messages", expected=1)

    rows = sorted(audit_rows(), key=lambda r: r.pk)
    assert [r.content for r in rows] == [
        "purged 1 logs of type 4 (error) created before 2025-01-01T00:00:00Z",
        "purged 1 tool calls created before 2025-01-01T00:00:00Z",
        "purged 1 chat messages created before 2025-01-01T00:00:00Z",
    ]
    assert [(r.other["kind"], r.other["log_type"], r.other["deleted"]) for r in rows] == [
        ("logs", 4, 1), ("tool-calls", None, 1), ("messages", None, 1)
    ]


def test_a_purge_that_deletes_nothing_leaves_no_audit(admin_client, db):
    response = confirm(admin_client, expected=3)
    assert response.status_code == 200
    assert audit_rows() == []


def test_the_batches_are_reported(admin_client, old_logs, monkeypatch):
    monkeypatch.setattr(admin_views, "PURGE_BATCH_SIZE", 2)
    response = confirm(admin_client, expected=5)

    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Purged 5 logs created before 2025-01-01T00:00:00Z.",
        "Deleted in 3 batches of up to 2 rows.",
    ]
    assert audit_rows()[0].other["batches"] == 3


def test_a_purge_out_of_time_stops_after_a_batch_and_says_what_remains(admin_client, old_logs, monkeypatch):
    monkeypatch.setattr(admin_views, "PURGE_BATCH_SIZE", 2)
    monkeypatch.setattr(admin_views, "PURGE_TIME_BUDGET", -1.0)  # spent before the first batch ends
    response = confirm(admin_client, expected=5)

    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "purged 2 logs created before 2025-01-01T00:00:00Z in 1 batch; 3 remain" in message
    assert Log.objects.exclude(type=Log.Type.MANAGE).count() == 3
    [row] = audit_rows()
    assert row.other["deleted"] == 2 and row.other["complete"] is False
    assert row.content.startswith("purged 2 logs created before 2025-01-01T00:00:00Z (stopped early")

    # Counting again continues where it stopped.
    monkeypatch.setattr(admin_views, "PURGE_TIME_BUDGET", 60.0)
    confirm(admin_client, expected=3)
    assert Log.objects.exclude(type=Log.Type.MANAGE).count() == 0


def test_the_audit_row_is_visible_in_the_log_admin(admin_client, old_logs):
    confirm(admin_client, expected=5)
    [row] = audit_rows()
    response = admin_client.get(f"/admin/logs/log/{row.pk}/change/")
    assert response.status_code == 200
    assert "purged 5 logs created before 2025-01-01T00:00:00Z" in response.content.decode()
