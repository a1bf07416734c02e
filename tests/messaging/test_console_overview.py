"""GET /api/stats: the console's usage overview (summary and daily series), by period
and for one chat."""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

STATS = "/api/stats"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
# "Now" in every test: 23:30 on 2026-06-03 in Shanghai (15:30 UTC).
NOW = datetime(2026, 6, 3, 15, 30, tzinfo=UTC)
TODAY = date(2026, 6, 3)
_ids = itertools.count()


def local(days_ago: int, hour: int = 10, minute: int = 0) -> datetime:
    """HOUR:MINUTE in Shanghai, DAYS_AGO days before today."""
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def frozen(monkeypatch, settings):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    settings.STATS_TIME_ZONE = "Asia/Shanghai"


@pytest.fixture
def record(post_json, service_headers):
    """Ingest through the endpoints, as production does (so the rollups are kept)."""

    def send(path: str, body: list[dict]) -> None:
        response = post_json(path, body, **service_headers)
        assert response.status_code == 201, response.json()

    return send


@pytest.fixture
def say(record):
    def messages(count: int, chat: str, user: str = "", *, at: datetime, bot: bool = False, **fields) -> None:
        record("/api/ingest/messages", [
            {"message_id": f"m{next(_ids)}", "chat_id": chat, "user_id": user, "sent_by_bot": bot,
             "created_at": at.isoformat(), **fields}
            for _ in range(count)
        ])  # fmt: skip

    return messages


@pytest.fixture
def llm(record):
    def calls(chat: str, *, at: datetime, prompt: int, completion: int = 0, username: str = "ann") -> None:
        record("/api/ingest/llm-calls", [
            {"request_id": f"c{next(_ids)}", "model_name": "gpt-4o", "chat_id": chat, "username": username,
             "prompt_tokens": prompt, "completion_tokens": completion, "created_at": at.isoformat()}
        ])  # fmt: skip

    return calls


@pytest.fixture
def tools(record):
    def calls(count: int, chat: str, *, at: datetime) -> None:
        record("/api/ingest/tool-calls", [
            {"request_id": f"t{next(_ids)}", "tool_id": "get_time", "chat_id": chat, "created_at": at.isoformat()}
            for _ in range(count)
        ])  # fmt: skip

    return calls


@pytest.fixture
def activity(say, llm, tools):
    say(3, "g1", "ann", at=local(0), chat_type="group", chat_name="Tea")
    say(2, "g1", "ben", at=local(0, 11))
    say(2, "g1", "bot", at=local(0, 12), bot=True)
    say(1, "g1", "ann", at=local(2))
    say(1, "g1", "bot", at=local(2, 11), bot=True)
    say(1, "g2", "cy", at=local(1), chat_type="group")
    say(2, "dm-dan", "dan", at=local(0, 8), chat_type="private")
    say(2, "dm-dan", "bot", at=local(0, 9), bot=True)
    say(5, "g3", "eve", at=local(10), chat_type="group")  # in the month, not the week
    llm("g1", at=local(0), prompt=100, completion=20)
    llm("g2", at=local(1), prompt=50, completion=5)
    llm("", at=local(0, 13), prompt=900, completion=100)
    llm("g3", at=local(10), prompt=7)
    tools(2, "g1", at=local(0))
    tools(1, "", at=local(0, 14))
    tools(1, "g1", at=local(2))


@pytest.fixture
def get(api, service_headers):
    def fetch(**params) -> dict:
        response = api.get(STATS, params, **service_headers)
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["success"] is True
        return body["data"]

    return fetch


def zero(day: date) -> dict:
    return {"date": day.isoformat(), "messages": 0, "responses": 0, "toolCalls": 0, "tokens": 0}


def test_a_week_sums_every_kind_of_activity(get, activity):
    assert get(period="week")["summary"] == {
        "totalMessages": 14,
        "aiResponses": 5,
        "toolCalls": 4,
        "tokensUsed": 120 + 55 + 1000,
        "activeUsers": 4,  # ann, ben, cy, dan; the bot is nobody
        "activeGroups": 2,  # g1, g2; a private chat is no group
    }


def test_the_daily_series_has_every_day_of_the_week_zero_filled(get, activity):
    daily = get(period="week")["daily"]
    assert [d["date"] for d in daily] == [(TODAY - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
    by_date = {d["date"]: d for d in daily}
    assert by_date["2026-06-03"] == {"date": "2026-06-03", "messages": 11, "responses": 4, "toolCalls": 3,
                                     "tokens": 1120}  # fmt: skip
    assert by_date["2026-06-02"] == {"date": "2026-06-02", "messages": 1, "responses": 0, "toolCalls": 0,
                                     "tokens": 55}  # fmt: skip
    assert by_date["2026-06-01"] == {"date": "2026-06-01", "messages": 2, "responses": 1, "toolCalls": 1,
                                     "tokens": 0}  # fmt: skip
    assert by_date["2026-05-28"] == zero(date(2026, 5, 28))


def test_day_is_today_only(get, activity):
    data = get(period="day")
    assert [d["date"] for d in data["daily"]] == ["2026-06-03"]
    assert data["summary"]["totalMessages"] == 11
    assert data["summary"]["activeGroups"] == 1


def test_month_is_the_last_30_calendar_days(get, activity):
    data = get(period="month")
    assert len(data["daily"]) == 30
    assert data["daily"][0]["date"] == "2026-05-05"
    assert data["summary"]["totalMessages"] == 19
    assert data["summary"]["activeUsers"] == 5
    assert data["summary"]["tokensUsed"] == 1182


def test_all_is_the_default_and_starts_its_series_on_the_first_day_with_data(get, activity):
    data = get()
    assert data == get(period="all")
    assert data["daily"][0] == {"date": "2026-05-24", "messages": 5, "responses": 0, "toolCalls": 0, "tokens": 7}
    assert len(data["daily"]) == 11
    assert data["summary"]["totalMessages"] == 19


def test_all_caps_its_series_at_366_days_but_not_its_summary(get, activity, say, tools):
    say(4, "g9", "old", at=local(400), chat_type="group")
    tools(1, "g9", at=local(800))
    data = get(period="all")
    assert len(data["daily"]) == 366
    assert data["daily"][0]["date"] == (TODAY - timedelta(days=365)).isoformat()
    assert data["summary"]["totalMessages"] == 19 + 4
    assert data["summary"]["toolCalls"] == 5
    assert data["summary"]["activeGroups"] == 4


def test_with_nothing_recorded_all_answers_today_with_zeros(get):
    assert get(period="all") == {
        "summary": {"totalMessages": 0, "aiResponses": 0, "toolCalls": 0, "tokensUsed": 0, "activeUsers": 0,
                    "activeGroups": 0},
        "daily": [zero(TODAY)],
    }  # fmt: skip


def test_days_begin_at_local_midnight_even_in_a_half_hour_zone(get, say, settings):
    settings.STATS_TIME_ZONE = "Asia/Kolkata"
    midnight = datetime(2026, 6, 2, 18, 30, tzinfo=UTC)  # 2026-06-03 00:00 in Kolkata
    say(1, "g1", "ann", at=midnight)
    say(2, "g1", "ann", at=midnight - timedelta(seconds=1))
    by_date = {d["date"]: d["messages"] for d in get(period="week")["daily"]}
    assert (by_date["2026-06-02"], by_date["2026-06-03"]) == (2, 1)


def test_group_id_restricts_every_number_to_that_chat(get, activity):
    assert get(period="week", groupId="g1")["summary"] == {
        "totalMessages": 9,
        "aiResponses": 3,
        "toolCalls": 3,
        "tokensUsed": 120,
        "activeUsers": 2,
        "activeGroups": 1,
    }
    daily = {d["date"]: d for d in get(period="week", groupId="g1")["daily"]}
    assert daily["2026-06-03"] == {"date": "2026-06-03", "messages": 7, "responses": 2, "toolCalls": 2,
                                   "tokens": 120}  # fmt: skip
    assert daily["2026-06-02"] == zero(date(2026, 6, 2))


def test_messages_without_a_sender_count_but_make_nobody_active(get, say):
    say(2, "g1", "", at=local(0), chat_type="group")
    summary = get(period="day")["summary"]
    assert (summary["totalMessages"], summary["activeUsers"], summary["activeGroups"]) == (2, 0, 1)


def test_a_private_chat_is_no_active_group(get, activity):
    summary = get(period="week", groupId="dm-dan")["summary"]
    assert (summary["totalMessages"], summary["activeUsers"], summary["activeGroups"]) == (4, 1, 0)


def test_group_id_over_all_time_sums_the_whole_history_of_the_chat(get, activity):
    summary = get(period="all", groupId="g3")["summary"]
    assert (summary["totalMessages"], summary["tokensUsed"], summary["activeGroups"]) == (5, 7, 1)


def test_an_unknown_chat_has_no_messages_but_keeps_the_calls_that_name_it(get, activity, llm):
    llm("ghost", at=local(0), prompt=3)
    data = get(period="week", groupId="ghost")
    assert data["summary"] == {"totalMessages": 0, "aiResponses": 0, "toolCalls": 0, "tokensUsed": 3,
                               "activeUsers": 0, "activeGroups": 0}  # fmt: skip
    assert len(data["daily"]) == 7


def test_a_blank_group_id_means_every_chat(api, service_headers, activity):
    body = api.get(f"{STATS}?period=week&groupId=", **service_headers).json()
    assert body["data"]["summary"]["totalMessages"] == 14


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"period": "year"}, "period"),
        ({"period": "WEEK"}, "period"),
        ({"groupId": "g" * 129}, "groupId"),
        ({"groupId": "g\x00"}, "groupId"),
    ],
)
def test_bad_parameters_answer_400_in_the_console_envelope(api, service_headers, params, named):
    response = api.get(STATS, params, **service_headers)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and set(body) == {"success", "error"}
    assert body["error"].startswith(f"{named}: ")


@pytest.mark.parametrize("params", [{"period": "week"}, {"period": "all"}, {"period": "all", "groupId": "g1"}])
def test_it_costs_a_fixed_number_of_queries_however_many_days_and_chats(
    api, service_headers, activity, say, params, django_assert_max_num_queries
):
    for n in range(20):
        say(1, f"extra-{n}", f"p{n}", at=local(n % 9, 9), chat_type="group")
    # Authentication (2), the chat (1), three daily series (6), three period totals (6),
    # senders (2), chats (2) and their kinds (1).
    with django_assert_max_num_queries(20):
        response = api.get(STATS, params, **service_headers)
    assert response.status_code == 200


def test_an_administrator_may_look(api, admin, activity):
    response = api.get(STATS, {"period": "week"}, HTTP_AUTHORIZATION=f"Bearer {issue_token(admin)}")
    assert response.status_code == 200 and response.json()["data"]["summary"]["totalMessages"] == 14


def test_other_accounts_are_refused_in_the_console_envelope(api, user_a):
    response = api.get(STATS, HTTP_AUTHORIZATION=f"Bearer {issue_token(user_a)}")
    assert response.status_code == 403
    assert response.json()["success"] is False and "error" in response.json()


def test_anonymous_callers_are_refused(api):
    response = api.get(STATS)
    assert response.status_code == 401 and response.json()["success"] is False
