"""POST /api/ingest/messages: chat messages, their chats and their senders."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from messaging.models import Chat, Message, Participant
from tests.ingest_support import MESSAGES, assert_nothing_stored, stored_counts

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(post_json, service_headers):
    def send(body):
        return post_json(MESSAGES, body, **service_headers)

    return send


def message(n: int | str = 1, chat: str = "group-1", **fields) -> dict:
    return {"message_id": f"m{n}", "chat_id": chat, **fields}


def test_one_message_is_stored_with_its_chat_and_sender(post):
    response = post(
        {
            "message_id": "m1",
            "chat_id": "group-1",
            "chat_name": "Tea room",
            "chat_type": "group",
            "user_id": "10086",
            "nickname": "Ann",
            "sent_by_bot": False,
            "created_at": "2024-05-01T10:00:00Z",
            "text": "hello  there ",
        }
    )

    assert response.status_code == 201
    assert response.json() == {"received": 1, "created": 1, "duplicates": 0}
    row = Message.objects.select_related("chat", "sender").get()
    assert row.message_id == "m1"
    assert (row.chat.chat_id, row.chat.name, row.chat.kind) == ("group-1", "Tea room", "group")
    assert (row.sender.user_id, row.sender.nickname) == ("10086", "Ann")
    assert row.sent_by_bot is False
    assert row.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert row.text == "hello  there "  # kept as sent, whitespace and all
    assert row.text_length == 13


def test_only_the_chat_id_is_required(post):
    assert post({"chat_id": "c"}).status_code == 201
    row = Message.objects.select_related("chat").get()
    assert row.message_id is None
    assert row.sender is None
    assert row.chat.kind == Chat.Kind.GROUP
    assert row.chat.name == ""
    assert (row.text, row.text_length) == ("", 0)


def test_a_message_without_a_chat_is_refused(post):
    before = stored_counts()
    response = post({"message_id": "m1", "text": "hi"})
    assert response.json()["errors"] == [{"index": 0, "errors": {"chat_id": ["This field is required."]}}]
    assert_nothing_stored(before)


def test_a_blank_chat_id_is_refused(post):
    assert "chat_id" in post(message(chat="   ")).json()["errors"][0]["errors"]


def test_a_private_chat_is_recorded_as_private(post):
    post(message(chat="dm-7", chat_type="private"))
    assert Chat.objects.get().kind == Chat.Kind.PRIVATE


def test_a_bot_message_is_flagged(post):
    post([message(1, sent_by_bot=True, user_id="bot"), message(2, user_id="10086")])
    assert dict(Message.objects.values_list("message_id", "sent_by_bot")) == {"m1": True, "m2": False}


def test_a_batch_creates_each_chat_and_sender_once(post):
    batch = [
        message(1, chat="g1", user_id="u1"),
        message(2, chat="g1", user_id="u2"),
        message(3, chat="g2", user_id="u1"),
        message(4, chat="g2"),
    ]

    assert post(batch).json() == {"received": 4, "created": 4, "duplicates": 0}
    assert Chat.objects.count() == 2
    assert Participant.objects.count() == 2
    assert Message.objects.filter(chat__chat_id="g1").count() == 2
    assert Message.objects.filter(sender__user_id="u1").count() == 2


def test_known_chats_and_senders_are_reused(post):
    chat = Chat.objects.create(chat_id="g1", name="Old name")
    person = Participant.objects.create(user_id="u1", nickname="Old nick")
    post(message(chat="g1", user_id="u1"))

    row = Message.objects.get()
    assert (row.chat, row.sender) == (chat, person)
    assert Chat.objects.count() == Participant.objects.count() == 1


def test_a_new_chat_name_and_nickname_replace_the_old_ones_after_the_commit(
    post, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(message(1, chat="g1", chat_name="Old name", user_id="u1", nickname="Old nick"))
    with django_capture_on_commit_callbacks(execute=True):
        post(message(2, chat="g1", chat_name="New name", chat_type="private", user_id="u1", nickname="New nick"))

    chat = Chat.objects.get()
    assert (chat.name, chat.kind) == ("New name", Chat.Kind.PRIVATE)
    assert Participant.objects.get().nickname == "New nick"


def test_a_message_without_a_name_does_not_erase_the_known_one(post, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(message(1, chat="g1", chat_name="Tea room", user_id="u1", nickname="Ann"))
        post(message(2, chat="g1", user_id="u1", chat_name="", nickname=""))
    assert Chat.objects.get().name == "Tea room"
    assert Participant.objects.get().nickname == "Ann"


def test_the_last_name_in_a_batch_wins(post, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(
            [
                message(1, chat="g1", chat_name="First"),
                message(2, chat="g1", chat_name="Second"),
                message(3, chat="g1"),
            ]
        )
    assert Chat.objects.get().name == "Second"


def test_a_refused_batch_renames_nothing(post, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(message(1, chat="g1", chat_name="Tea room"))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post([message(2, chat="g1", chat_name="Renamed"), message(3, chat_type="channel")])
    assert response.status_code == 400
    assert callbacks == []
    assert Chat.objects.get().name == "Tea room"


def test_resending_a_batch_stores_nothing_twice(post):
    batch = [message(1), message(2), message(3, chat="g2")]
    post(batch)
    assert post(batch).json() == {"received": 3, "created": 0, "duplicates": 3}
    assert Message.objects.count() == 3


def test_a_message_repeated_within_one_batch_is_stored_once(post):
    response = post([message(1, text="first"), message(1, text="again"), message(2)])
    assert response.json() == {"received": 3, "created": 2, "duplicates": 1}
    assert Message.objects.get(message_id="m1").text == "first"


def test_the_same_message_id_in_two_chats_is_two_messages(post):
    assert post([message(1, chat="g1"), message(1, chat="g2")]).json()["created"] == 2
    assert post([message(1, chat="g2"), message(1, chat="g3")]).json() == {
        "received": 2,
        "created": 1,
        "duplicates": 1,
    }


def test_messages_without_a_message_id_are_never_duplicates(post):
    post([{"chat_id": "g1", "text": "hi"}, {"chat_id": "g1", "text": "hi", "message_id": ""}])
    post({"chat_id": "g1", "text": "hi"})
    assert Message.objects.count() == 3


def test_one_bad_message_stores_nothing_of_the_batch(post):
    before = stored_counts()
    response = post([message(1, chat="new-chat", user_id="new-person"), message(2, sent_by_bot="perhaps")])

    assert response.status_code == 400
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert_nothing_stored(before)


def test_a_platform_user_id_does_not_create_an_account(post, django_user_model):
    before = django_user_model.objects.count()
    post(message(user_id="10086"))
    assert django_user_model.objects.count() == before
