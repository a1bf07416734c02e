"""The admin's "Purge older than…" page: preview count, confirmation, deletion, access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from logs.models import Log
from messaging.models import Chat, Message
from usage.models import ToolCall

CUTOFF = datetime(2025, 1, 1, tzinfo=UTC)
PAGE = "/admin/purge/"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The admin_user fixture sets a password; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def logs(db) -> dict[str, list[Log]]:
    old = [Log.objects.create(created_at=CUTOFF - timedelta(days=d), type=2) for d in (1, 2, 3)]
    old_errors = [Log.objects.create(created_at=CUTOFF - timedelta(days=1), type=4, success=False)]
    new = [Log.objects.create(created_at=CUTOFF + timedelta(hours=h), type=2) for h in (0, 1)]
    return {"old": old, "old_errors": old_errors, "new": new}


def preview(client: Client, **fields) -> object:
    return client.post(PAGE, {"stage": "preview", "before": "2025-01-01", **fields})


def confirm(client: Client, confirmation: str, expected: int, **fields) -> object:
    data = {
        "stage": "confirm",
        "kind": "logs",
        "before": "2025-01-01T00:00:00Z",
        "log_type": "",
        "expected": expected,
        "confirmation": confirmation,
        **fields,
    }
    return client.post(PAGE, data, follow=True)


def test_the_url_is_the_admins():
    assert reverse("admin:purge") == PAGE


def test_it_shows_the_form(admin_client):
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    assert response.context["stage"] == "choose"
    assert set(response.context["form"].fields) == {"kind", "before", "log_type"}


def test_the_preview_counts_the_rows_and_deletes_nothing(admin_client, logs):
    response = preview(admin_client, kind="logs")

    assert response.status_code == 200
    assert response.context["stage"] == "confirm"
    assert response.context["summary"]["count"] == 4
    html = response.content.decode()
    assert '<strong id="purge-count">4</strong> logs created before 2025-01-01T00:00:00Z' in html
    assert Log.objects.count() == 6


def test_the_preview_of_one_log_type_counts_only_it(admin_client, logs):
    response = preview(admin_client, kind="logs", log_type="4")
    assert response.context["summary"]["count"] == 1
    assert "logs of type 4 (error)" in response.content.decode()


def test_the_purge_needs_the_confirmation(admin_client, logs):
    for typed in ("", "3", "yes"):
        response = confirm(admin_client, typed, expected=4)
        assert response.status_code == 200
        assert response.context["stage"] == "confirm"
        assert "confirmation" in response.context["form"].errors
    assert Log.objects.count() == 6


@pytest.mark.parametrize("typed", ["4", "purge", " PURGE "])
def test_the_confirmed_purge_deletes_the_old_rows_only(admin_client, logs, typed):
    response = confirm(admin_client, typed, expected=4)

    assert response.redirect_chain == [(PAGE, 302)]
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Purged 4 logs created before 2025-01-01T00:00:00Z."
    ]
    # What is left: the newer rows, and the purge's own audit row (a manage log).
    kept = Log.objects.exclude(type=Log.Type.MANAGE)
    assert set(kept.values_list("pk", flat=True)) == {row.pk for row in logs["new"]}


def test_the_confirmed_purge_of_one_log_type_keeps_the_others(admin_client, logs):
    confirm(admin_client, "purge", expected=1, log_type="4")
    assert Log.objects.filter(type=4).count() == 0
    assert Log.objects.exclude(type=Log.Type.MANAGE).count() == 5


def test_it_purges_tool_calls_and_messages(admin_client, db):
    chat = Chat.objects.create(chat_id="g1")
    ToolCall.objects.create(tool_id="t", created_at=CUTOFF - timedelta(days=1))
    kept_call = ToolCall.objects.create(tool_id="t", created_at=CUTOFF)
    Message.objects.create(chat=chat, created_at=CUTOFF - timedelta(days=1))
    kept_message = Message.objects.create(chat=chat, created_at=CUTOFF + timedelta(days=1))

    assert preview(admin_client, kind="tool-calls").context["summary"]["count"] == 1
    confirm(admin_client, "1", expected=1, kind="tool-calls")
    confirm(admin_client, "purge", expected=1, kind="messages")

    assert list(ToolCall.objects.values_list("pk", flat=True)) == [kept_call.pk]
    assert list(Message.objects.values_list("pk", flat=True)) == [kept_message.pk]


def test_a_log_type_is_refused_for_other_kinds(admin_client, logs):
    response = preview(admin_client, kind="messages", log_type="2")
    assert response.context["stage"] == "choose"
    assert "log_type" in response.context["form"].errors


def test_a_bad_date_is_refused(admin_client, logs):
    response = admin_client.post(PAGE, {"stage": "preview", "kind": "logs", "before": "2025-02-30"})
    assert response.context["stage"] == "choose"
    assert "before" in response.context["form"].errors


def test_nothing_to_purge_says_so(admin_client, logs):
    response = admin_client.post(PAGE, {"stage": "preview", "kind": "logs", "before": "2020-01-01"}, follow=True)
    assert response.context["stage"] == "choose"
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert messages == ["Nothing to purge: there are no logs created before 2020-01-01T00:00:00Z."]


def test_a_non_staff_user_is_sent_to_the_login(client, user_a, logs):
    client.force_login(user_a)
    for response in (client.get(PAGE), confirm(client, "purge", expected=4)):
        assert response.status_code in (200, 302)
        final = response.redirect_chain[-1][0] if getattr(response, "redirect_chain", None) else response.url
        assert final.startswith(reverse("admin:login"))
    assert Log.objects.count() == 6


def test_an_anonymous_visitor_is_sent_to_the_login(client, logs):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_without_delete_permission_is_refused(client, admin, logs):
    client.force_login(admin)
    assert client.get(PAGE).status_code == 403
    assert confirm(client, "purge", expected=4).status_code == 403
    assert Log.objects.count() == 6


def test_staff_may_purge_only_what_they_may_delete(client, admin, logs):
    admin.user_permissions.add(Permission.objects.get(codename="delete_toolcall"))
    client.force_login(admin)
    response = client.get(PAGE)
    assert [value for value, _ in response.context["form"].fields["kind"].choices] == ["tool-calls"]
    response = confirm(client, "purge", expected=4)  # kind=logs is not theirs
    assert "kind" in response.context["form"].errors
    assert Log.objects.count() == 6


def test_it_is_csrf_protected(admin_user, logs):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(
        PAGE,
        {"stage": "confirm", "kind": "logs", "before": "2025-01-01", "expected": 4, "confirmation": "purge"},
    )
    assert response.status_code == 403
    assert Log.objects.count() == 6
