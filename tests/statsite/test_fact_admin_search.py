"""FactAdmin's search: the terms' rows from the admin's `holding` where it says how
(the log and tool call admins, tested beside them), else Django's own search of
`search_fields`, as the message admin keeps."""

from __future__ import annotations

import pytest

from messaging.models import Chat, Message, Participant
from tests.admin_search import searched

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages():
    chat = Chat.objects.create(chat_id="g1", name="Friends")
    sender = Participant.objects.create(user_id="u1", nickname="Al")
    for message_id, text in (("m1", "hello there"), ("m2", "Hello again"), ("M3", "bye")):
        Message.objects.create(chat=chat, sender=sender, message_id=message_id, text=text)


@pytest.mark.parametrize("term", ["hello", "HELLO there", '"again"', "m3", "bye m3", "zzz", ""])
def test_an_admin_that_says_nothing_of_holding_searches_as_django_does(messages, term):
    assert searched(Message, term) == searched(Message, term, stock=True)


def test_it_finds_what_it_should(messages):
    texts = dict(Message.objects.values_list("pk", "text"))
    assert {texts[pk] for pk in searched(Message, "hello")} == {"hello there", "Hello again"}
    assert {texts[pk] for pk in searched(Message, "m3")} == {"bye"}  # Django's `=message_id`: any case
    assert len(searched(Message, "")) == 3
