"""GET /messages/stats_by_chat: messages per chat (and per sender), in every shape the
bot stats document shows or implies."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from messaging.models import Chat, Participant
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

BY_CHAT = "/messages/stats_by_chat"
NOW = datetime(2026, 6, 3, 15, 30, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=2)
_ids = itertools.count()


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


@pytest.fixture
def say(post_json, service_headers):
    def record(count: int, chat: str, user: str = "", *, bot: bool = False, at: datetime = EARLIER, **fields):
        body = [
            {"message_id": f"m{next(_ids)}", "chat_id": chat, "user_id": user, "sent_by_bot": bot,
             "created_at": at.isoformat(), **fields}
            for _ in range(count)
        ]  # fmt: skip
        response = post_json("/api/ingest/messages", body, **service_headers)
        assert response.status_code == 201, response.json()

    return record


@pytest.fixture
def get(api, service_headers):
    def fetch(**params):
        response = api.get(BY_CHAT, params, **service_headers)
        assert response.status_code == 200, response.json()
        return response.json()

    return fetch


@pytest.fixture
def chats(say):
    """A named group with three people and the bot, a private chat, and a group nobody named."""
    say(1, "chat_123456", "user_10001", chat_name="技术交流群", chat_type="group", nickname="张三")
    say(1, "chat_123456", "user_10002", nickname="李四")
    say(1, "chat_123456", "user_10003", nickname="王五")
    say(199, "chat_123456", "user_10001")
    say(149, "chat_123456", "user_10002")
    say(99, "chat_123456", "user_10003")
    say(150, "chat_123456", "bot-1", bot=True, nickname="Bot")
    say(120, "chat_789012", "user_20001", chat_type="private", nickname="用户昵称")
    say(85, "chat_789012", "bot-1", bot=True)
    say(2, "g-unnamed", "user_30001")  # no nickname recorded
    say(1, "g-unnamed")  # no sender recorded
    say(7, "g-unnamed", "bot-1", bot=True, at=NOW - timedelta(days=3))  # outside days=1


def test_bot_counts_per_chat_by_default_format(get, chats):
    assert get(source="bot") == {"chat_123456": 150, "chat_789012": 85}


def test_bot_with_format_names_each_chat(get, chats):
    assert get(source="bot", format="true") == {
        "chat_123456": {"chat_name": "技术交流群", "count": 150},
        # A private chat is named after the person the bot talks with.
        "chat_789012": {"chat_name": "用户昵称", "count": 85},
    }


def test_group_by_user_is_ignored_for_the_bot(get, chats):
    assert get(source="bot", group_by_user="true") == get(source="bot")
    assert get(source="bot", group_by_user="true", format="true") == get(source="bot", format="true")


def test_user_totals_per_chat_by_default(get, chats):
    body = get()
    assert body == {"chat_123456": {"total": 450}, "chat_789012": {"total": 120}, "g-unnamed": {"total": 3}}
    # Busiest chat first.
    assert list(body) == ["chat_123456", "chat_789012", "g-unnamed"]


def test_user_totals_with_format_wrap_the_total_and_add_the_name(get, chats):
    assert get(format="true") == {
        "chat_123456": {"chat_name": "技术交流群", "total_stats": {"total": 450}},
        "chat_789012": {"chat_name": "用户昵称", "total_stats": {"total": 120}},
        "g-unnamed": {"chat_name": "unknown", "total_stats": {"total": 3}},
    }


def test_group_by_user_without_format_counts_per_user_id(get, chats):
    assert get(group_by_user="true") == {
        "chat_123456": {
            "total_stats": {"total": 450},
            "user_stats": {"user_10001": 200, "user_10002": 150, "user_10003": 100},
        },
        "chat_789012": {"total_stats": {"total": 120}, "user_stats": {"user_20001": 120}},
        # A message without a sender is counted under the empty user id.
        "g-unnamed": {"total_stats": {"total": 3}, "user_stats": {"user_30001": 2, "": 1}},
    }


def test_group_by_user_with_format_is_the_documents_full_example(get, chats):
    body = get(group_by_user="true", format="true")
    assert body["chat_123456"] == {
        "chat_name": "技术交流群",
        "total_stats": {"total": 450},
        "user_stats": {
            "user_10001": {"nickname": "张三", "count": 200},
            "user_10002": {"nickname": "李四", "count": 150},
            "user_10003": {"nickname": "王五", "count": 100},
        },
    }
    assert list(body["chat_123456"]["user_stats"]) == ["user_10001", "user_10002", "user_10003"]
    assert body["g-unnamed"] == {
        "chat_name": "unknown",
        "total_stats": {"total": 3},
        "user_stats": {"user_30001": {"nickname": "unknown", "count": 2}, "": {"nickname": "unknown", "count": 1}},
    }


def test_ties_are_ordered_by_id(get, say):
    say(2, "b-chat", "zed")
    say(1, "a-chat", "bob")
    say(1, "a-chat", "abe")
    assert list(get()) == ["a-chat", "b-chat"]
    assert list(get(group_by_user="1")["a-chat"]["user_stats"]) == ["abe", "bob"]


def test_a_private_chat_without_a_known_peer_uses_its_own_name_then_unknown(get, say):
    say(1, "dm-bot-only", "bot-1", bot=True, chat_type="private", chat_name="Saved as Zoe")
    say(1, "dm-nameless", "bot-1", bot=True, chat_type="private")
    assert get(source="bot", format="1") == {
        "dm-bot-only": {"chat_name": "Saved as Zoe", "count": 1},
        "dm-nameless": {"chat_name": "unknown", "count": 1},
    }


def test_a_renamed_group_and_nickname_show_the_newest_names(get, say, django_capture_on_commit_callbacks):
    # Ingest renames chats and people after its commit.
    with django_capture_on_commit_callbacks(execute=True):
        say(1, "g1", "ann", chat_name="Old", nickname="Annie")
        say(1, "g1", "ann", chat_name="New", nickname="Ann")
    body = get(group_by_user="true", format="true")
    assert body["g1"]["chat_name"] == "New"
    assert body["g1"]["user_stats"]["ann"]["nickname"] == "Ann"


def test_days_widen_the_window_by_calendar_days(get, chats):
    assert "g-unnamed" not in get(source="bot")
    assert get(source="bot", days=4)["g-unnamed"] == 7


def test_nothing_in_the_window_is_an_empty_object(get):
    assert get() == {}
    assert get(source="bot", format="true") == {}


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1"])
def test_true_may_be_written_as_true_or_1(get, chats, value):
    assert "user_stats" in get(group_by_user=value)["chat_123456"]
    assert "chat_name" in get(format=value)["chat_123456"]


@pytest.mark.parametrize("value", ["false", "False", "0"])
def test_false_may_be_written_as_false_or_0(get, chats, value):
    assert get(group_by_user=value, format=value)["chat_123456"] == {"total": 450}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"group_by_user": "yes"}, "group_by_user"),
        ({"group_by_user": "2"}, "group_by_user"),
        ({"format": "on"}, "format"),
        ({"format": "tru"}, "format"),
        ({"source": "users"}, "source"),
        ({"source": "BOT"}, "source"),
        ({"days": 0}, "days"),
        ({"days": -1}, "days"),
        ({"days": "week"}, "days"),
        ({"days": 100000}, "days"),
    ],
)
def test_bad_parameters_answer_400_naming_the_parameter(api, service_headers, params, named):
    response = api.get(BY_CHAT, params, **service_headers)
    assert response.status_code == 400
    assert list(response.json()) == ["detail"]
    assert response.json()["detail"].startswith(f"{named}: ")


@pytest.mark.parametrize("params", [{}, {"format": "true"}, {"group_by_user": "true", "format": "true"},
                                    {"source": "bot", "format": "true"}])  # fmt: skip
def test_it_costs_a_fixed_number_of_queries_however_many_chats(
    api, service_headers, say, params, django_assert_max_num_queries
):
    for n in range(30):
        say(2, f"chat-{n}", f"user-{n}", chat_type=["group", "private"][n % 2], nickname=f"N{n}")
        say(1, f"chat-{n}", "bot-1", bot=True)
    # Authentication (2), usage() (2), chats, private peers, participants.
    with django_assert_max_num_queries(7):
        response = api.get(BY_CHAT, params, **service_headers)
    assert len(response.json()) == 30


def test_a_chat_deleted_after_its_messages_were_purged_is_left_out(get, say):
    from logs.services import purge

    say(1, "gone", "ann")
    say(1, "kept", "ben")
    purge("messages", before=NOW)
    Chat.objects.filter(chat_id="gone").delete()
    Participant.objects.filter(user_id="ann").delete()
    # The rollups still hold the purged messages; the deleted chat has no id left to show.
    assert get() == {"kept": {"total": 1}}


def test_accounts_are_refused(api, admin):
    response = api.get(BY_CHAT, HTTP_AUTHORIZATION=f"Bearer {issue_token(admin)}")
    assert response.status_code == 403 and list(response.json()) == ["detail"]


def test_a_missing_key_is_a_401(api):
    response = api.get(BY_CHAT)
    assert response.status_code == 401 and list(response.json()) == ["detail"]
