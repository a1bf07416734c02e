"""GET /api/stats/users and /api/stats/groups: the console's rankings of people and
group chats by messages or tokens, over all time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from logs.services import purge
from messaging.models import Chat, Participant
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

USERS = "/api/stats/users"
GROUPS = "/api/stats/groups"
NOW = datetime(2026, 6, 3, 15, 30, tzinfo=UTC)
_ids = itertools.count()


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


@pytest.fixture
def record(post_json, service_headers):
    def send(path: str, body: list[dict]) -> None:
        response = post_json(path, body, **service_headers)
        assert response.status_code == 201, response.json()

    return send


@pytest.fixture
def say(record):
    def messages(count: int, chat: str, user: str = "", *, at: datetime | None = None, bot: bool = False,
                 **fields) -> None:  # fmt: skip
        moment = (at or ago(hours=1)).isoformat()
        record("/api/ingest/messages", [
            {"message_id": f"m{next(_ids)}", "chat_id": chat, "user_id": user, "sent_by_bot": bot,
             "created_at": moment, **fields}
            for _ in range(count)
        ])  # fmt: skip

    return messages


@pytest.fixture
def llm(record):
    def call(username: str, *, tokens: int, chat: str = "", at: datetime | None = None) -> None:
        record("/api/ingest/llm-calls", [
            {"request_id": f"c{next(_ids)}", "model_name": "gpt-4o", "username": username, "chat_id": chat,
             "prompt_tokens": tokens, "created_at": (at or ago(hours=1)).isoformat()}
        ])  # fmt: skip

    return call


@pytest.fixture
def get(api, service_headers):
    def fetch(path: str, **params) -> dict:
        response = api.get(path, params, **service_headers)
        assert response.status_code == 200, response.json()
        assert response.json()["success"] is True
        return response.json()["data"]

    return fetch


@pytest.fixture
def community(say, llm):
    """Two groups and a private chat. ann writes most, ben's account uses most tokens."""
    say(5, "g1", "ann", nickname="Ann", chat_type="group", chat_name="Tea", at=ago(days=30))
    say(2, "g1", "ann", at=ago(minutes=30))
    say(3, "g1", "ben", nickname="Ben")
    say(9, "g1", "bot", bot=True, nickname="The Bot")  # the bot's messages are nobody's
    say(4, "g2", "cy", nickname="Cy", chat_type="group", chat_name="Chess", at=ago(days=2))
    say(1, "g2", "ann", at=ago(days=2))
    say(6, "dm-dan", "dan", nickname="Dan", chat_type="private", at=ago(days=400))
    llm("ben", tokens=5000, chat="g2", at=ago(minutes=10))
    llm("ann", tokens=300, chat="g1")
    llm("gateway-user", tokens=800)  # an account that never wrote: no nickname known


# --- users --------------------------------------------------------------------------------


def test_users_are_ranked_by_the_messages_they_wrote_by_default(get, community):
    users = get(USERS)["users"]
    assert [(u["userId"], u["messages"]) for u in users] == [
        ("ann", 8), ("dan", 6), ("cy", 4), ("ben", 3), ("gateway-user", 0),
    ]  # fmt: skip


def test_each_user_has_a_nickname_tokens_and_the_time_of_their_newest_activity(get, community):
    users = {u["userId"]: u for u in get(USERS)["users"]}
    assert users["ann"] == {
        "userId": "ann",
        "nickname": "Ann",
        "messages": 8,
        "tokens": 300,
        "lastActive": "2026-06-03T15:00:00Z",
    }
    # Ben's newest activity is an LLM call, after his last message.
    assert users["ben"]["lastActive"] == "2026-06-03T15:20:00Z"
    assert users["dan"]["lastActive"] == "2025-04-29T15:30:00Z"
    assert users["gateway-user"]["nickname"] == "unknown"


def test_sort_by_tokens(get, community):
    users = get(USERS, sort="tokens")["users"]
    assert [(u["userId"], u["tokens"]) for u in users[:3]] == [("ben", 5000), ("gateway-user", 800), ("ann", 300)]
    # Ties (no tokens) are broken by user id.
    assert [u["userId"] for u in users[3:]] == ["cy", "dan"]


def test_user_ties_are_broken_by_user_id(get, say):
    say(1, "g1", "zed")
    say(1, "g1", "amy")
    assert [u["userId"] for u in get(USERS)["users"]] == ["amy", "zed"]


def test_an_account_that_never_wrote_still_gets_its_participants_nickname(get, say, llm):
    say(1, "g1", "bot", bot=True)  # sent as "bot", whose nickname is known
    Participant.objects.filter(user_id="bot").update(nickname="Botty")
    llm("bot", tokens=10)
    assert get(USERS)["users"] == [
        {"userId": "bot", "nickname": "Botty", "messages": 0, "tokens": 10, "lastActive": "2026-06-03T14:30:00Z"}
    ]


def test_a_user_without_a_nickname_reads_unknown(get, say):
    say(1, "g1", "nameless")
    assert get(USERS)["users"][0]["nickname"] == "unknown"


def test_limit_keeps_the_first_ones(get, community):
    assert [u["userId"] for u in get(USERS, limit=2)["users"]] == ["ann", "dan"]


def test_limit_defaults_to_20(get, say):
    for n in range(25):
        say(1, "g1", f"u{n:02d}")
    users = get(USERS)["users"]
    assert len(users) == 20
    assert users[0]["userId"] == "u00" and users[-1]["userId"] == "u19"


def test_purged_messages_still_count(get, community):
    assert purge("messages", before=ago(days=1)) == 16
    assert [(u["userId"], u["messages"]) for u in get(USERS)["users"]][:3] == [("ann", 8), ("dan", 6), ("cy", 4)]


def test_people_deleted_after_their_messages_were_purged_are_left_out(get, say, llm, user_b):
    say(2, "g1", "gone")
    say(1, "g1", "kept")
    llm("bob", tokens=5)
    purge("messages", before=NOW)
    purge("logs", before=NOW)
    Participant.objects.filter(user_id="gone").delete()
    user_b.delete()  # bob's account
    # The rollups still count them, but nothing is left to name them by.
    assert [u["userId"] for u in get(USERS)["users"]] == ["kept"]


def test_no_activity_is_an_empty_ranking(get):
    assert get(USERS) == {"users": []}
    assert get(GROUPS) == {"groups": []}


# --- groups -------------------------------------------------------------------------------


def test_groups_are_ranked_by_their_messages(get, community):
    assert get(GROUPS)["groups"] == [
        {"groupId": "g1", "name": "Tea", "messages": 19, "users": 2, "tokens": 300,
         "lastActive": "2026-06-03T15:00:00Z"},
        {"groupId": "g2", "name": "Chess", "messages": 5, "users": 2, "tokens": 5000,
         "lastActive": "2026-06-03T15:20:00Z"},
    ]  # fmt: skip


def test_sort_groups_by_tokens(get, community):
    assert [g["groupId"] for g in get(GROUPS, sort="tokens")["groups"]] == ["g2", "g1"]


def test_groups_with_purged_messages_or_only_llm_calls_are_ranked_and_private_chats_are_not(
    get, community, say, llm
):
    say(1, "g-quiet", "bot", bot=True, chat_type="group", at=ago(days=900))
    purge("messages", before=ago(days=800))
    Chat.objects.create(chat_id="g-admin", kind=Chat.Kind.GROUP, name="Made in the admin")
    llm("ann", tokens=7, chat="g-admin", at=ago(days=1))
    llm("ann", tokens=1, chat="dm-dan")  # a private chat: not a group
    llm("ann", tokens=1, chat="nowhere")  # no such chat: its kind is unknown
    groups = {g["groupId"]: g for g in get(GROUPS)["groups"]}
    assert set(groups) == {"g1", "g2", "g-quiet", "g-admin"}
    assert groups["g-quiet"] == {"groupId": "g-quiet", "name": "unknown", "messages": 1, "users": 0, "tokens": 0,
                                 "lastActive": "2023-12-16T15:30:00Z"}  # fmt: skip
    assert groups["g-admin"] == {"groupId": "g-admin", "name": "Made in the admin", "messages": 0, "users": 0,
                                 "tokens": 7, "lastActive": "2026-06-02T15:30:00Z"}  # fmt: skip


def test_group_ties_are_broken_by_id(get, say, llm):
    say(2, "gb", "x", chat_type="group")
    say(2, "ga", "y", chat_type="group")
    assert [g["groupId"] for g in get(GROUPS)["groups"]] == ["ga", "gb"]
    # A group with no messages (made in the admin) whose LLM calls used no tokens ties too.
    Chat.objects.create(chat_id="aa", kind=Chat.Kind.GROUP)
    llm("ann", tokens=0, chat="aa")
    assert [g["groupId"] for g in get(GROUPS, sort="tokens")["groups"]] == ["aa", "ga", "gb"]


# --- parameters, callers, cost ----------------------------------------------------------------


@pytest.mark.parametrize("path", [USERS, GROUPS])
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"sort": "name"}, "sort"),
        ({"sort": "Messages"}, "sort"),
    ],
)
def test_bad_parameters_answer_400_in_the_console_envelope(api, service_headers, path, params, named):
    response = api.get(path, params, **service_headers)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and set(body) == {"success", "error"}
    assert body["error"].startswith(f"{named}: ")


@pytest.mark.parametrize("path", [USERS, GROUPS])
def test_the_largest_limit_is_accepted(get, community, path):
    assert get(path, limit=100)


@pytest.mark.parametrize(("path", "sort"), list(itertools.product([USERS, GROUPS], ["messages", "tokens"])))
def test_a_ranking_costs_a_fixed_number_of_queries_however_many_people_and_chats(
    api, service_headers, say, llm, path, sort, django_assert_max_num_queries
):
    for n in range(30):
        say(2, f"g{n}", f"p{n}", chat_type="group", nickname=f"P{n}")
        llm(f"p{n}", tokens=n, chat=f"g{n}")
        llm(f"acct{n}", tokens=n)
    # Authentication (2), two usage() calls of two queries each, or three for groups,
    # and the names of the people or chats.
    with django_assert_max_num_queries(10):
        response = api.get(path, {"sort": sort, "limit": 50}, **service_headers)
    assert response.status_code == 200


@pytest.mark.parametrize("path", [USERS, GROUPS])
def test_administrators_may_look_and_other_accounts_may_not(api, admin, user_a, path):
    assert api.get(path, HTTP_AUTHORIZATION=f"Bearer {issue_token(admin)}").status_code == 200
    response = api.get(path, HTTP_AUTHORIZATION=f"Bearer {issue_token(user_a)}")
    assert response.status_code == 403 and response.json()["success"] is False


def test_name_lookups_find_every_one_of_more_ids_than_one_statement_binds():
    # On PostgreSQL the ids go as one array parameter; elsewhere in chunks of 500.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from messaging.selectors import _among, _participants

    people = Participant.objects.bulk_create(Participant(user_id=f"u{n:04d}", nickname=f"N{n}") for n in range(1201))
    pks = [p.pk for p in people] + [people[0].pk]  # a repeat is looked up once
    with CaptureQueriesContext(connection) as queries:
        found = _participants(pks)
    assert len(found) == 1201 and found[people[7].pk]["nickname"] == "N7"
    assert len(queries) == (1 if connection.vendor == "postgresql" else 3)
    by_platform_id = Participant.objects.filter(next(iter(_among("user_id", ["u0003", "u0002", "u0003"]))))
    assert sorted(by_platform_id.values_list("user_id", flat=True)) == ["u0002", "u0003"]
    assert list(_among("pk", [])) == []
