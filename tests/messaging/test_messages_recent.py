"""GET /messages/recent: how many messages the bot sent and received over the last days."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tests.conftest import issue_token

pytestmark = pytest.mark.django_db

RECENT = "/messages/recent"
# "Now" in every test: 15:30 UTC, 23:30 in Shanghai, on 2026-06-03.
NOW = datetime(2026, 6, 3, 15, 30, tzinfo=UTC)
# Local midnight of 2026-06-03 in Shanghai.
TODAY_SHANGHAI = datetime(2026, 6, 2, 16, 0, tzinfo=UTC)
_ids = itertools.count()


@pytest.fixture(autouse=True)
def frozen(monkeypatch, settings):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    settings.STATS_TIME_ZONE = "Asia/Shanghai"


@pytest.fixture
def say(post_json, service_headers):
    """Record messages through the ingest endpoint: COUNT of them at AT, by the bot or not."""

    def record(count: int, *, at: datetime, bot: bool = False, chat: str = "g1") -> None:
        body = [
            {"message_id": f"m{next(_ids)}", "chat_id": chat, "user_id": "bot" if bot else "ann",
             "sent_by_bot": bot, "created_at": at.isoformat()}
            for _ in range(count)
        ]  # fmt: skip
        response = post_json("/api/ingest/messages", body, **service_headers)
        assert response.status_code == 201, response.json()

    return record


@pytest.fixture
def get(api, service_headers):
    def fetch(**params):
        return api.get(RECENT, params, **service_headers)

    return fetch


@pytest.fixture
def traffic(say):
    """Today (Shanghai): 3 sent, 5 received; yesterday: 1 sent, 2 received; 3 days ago: 4 received."""
    say(3, at=TODAY_SHANGHAI + timedelta(hours=1), bot=True)
    say(4, at=TODAY_SHANGHAI, chat="g2")  # exactly at local midnight: today
    say(1, at=NOW - timedelta(minutes=1), chat="dm-1")
    say(1, at=TODAY_SHANGHAI - timedelta(seconds=1), bot=True)  # yesterday, one second before midnight
    say(2, at=TODAY_SHANGHAI - timedelta(hours=20))
    say(4, at=TODAY_SHANGHAI - timedelta(days=2, hours=1))


def test_all_answers_sent_received_and_total_of_today_by_default(get, traffic):
    response = get()
    assert response.status_code == 200
    assert response.json() == {
        "days": 1,
        "message_type": "all",
        "sent_count": 3,
        "received_count": 5,
        "total_count": 8,
    }


def test_sent_counts_the_bots_messages(get, traffic):
    assert get(message_type="sent").json() == {"days": 1, "message_type": "sent", "count": 3}


def test_received_counts_everyone_elses(get, traffic):
    assert get(message_type="received").json() == {"days": 1, "message_type": "received", "count": 5}


def test_days_are_calendar_days_in_the_stats_time_zone(get, traffic):
    assert get(days=2).json()["total_count"] == 8 + 3
    assert get(days=3).json()["total_count"] == 8 + 3
    assert get(days=4).json()["total_count"] == 8 + 3 + 4


def test_messages_after_now_are_not_counted(get, say):
    say(2, at=NOW + timedelta(hours=2))
    say(1, at=NOW - timedelta(hours=2))
    assert get(message_type="received").json()["count"] == 1


def test_a_quiet_period_answers_zeros(get):
    assert get(days=30).json() == {
        "days": 30, "message_type": "all", "sent_count": 0, "received_count": 0, "total_count": 0,
    }  # fmt: skip


def test_a_blank_value_means_the_default(api, service_headers, traffic):
    response = api.get(f"{RECENT}?days=&message_type=", **service_headers)
    assert response.json()["days"] == 1 and response.json()["message_type"] == "all"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"days": 0}, "days"),
        ({"days": -3}, "days"),
        ({"days": "abc"}, "days"),
        ({"days": "1.5"}, "days"),
        ({"days": 3661}, "days"),
        ({"days": "9" * 40}, "days"),
        ({"message_type": "both"}, "message_type"),
        ({"message_type": "SENT"}, "message_type"),
    ],
)
def test_bad_parameters_answer_400_naming_the_parameter(get, params, named):
    response = get(**params)
    assert response.status_code == 400
    assert list(response.json()) == ["detail"]
    assert response.json()["detail"].startswith(f"{named}: ")


def test_the_widest_window_is_accepted(get, traffic):
    assert get(days=3660).json()["total_count"] == 15


def test_it_costs_a_fixed_number_of_queries(get, traffic, django_assert_max_num_queries):
    # Authentication (the key's lookup and its last-use mark) and the two of usage().
    with django_assert_max_num_queries(4):
        assert get(days=365).status_code == 200


def test_a_missing_key_is_a_401(api):
    response = api.get(RECENT)
    assert response.status_code == 401
    assert list(response.json()) == ["detail"]


def test_a_wrong_key_is_a_401_invalid_api_key(api, db):
    response = api.get(RECENT, HTTP_X_API_KEY="nope")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid API key"})


def test_accounts_even_administrators_are_refused(api, admin, user_a):
    for user in (admin, user_a):
        response = api.get(RECENT, HTTP_AUTHORIZATION=f"Bearer {issue_token(user)}")
        assert response.status_code == 403
        assert list(response.json()) == ["detail"]


def test_a_service_key_may_also_come_as_bearer(api, service_key):
    assert api.get(RECENT, HTTP_AUTHORIZATION=f"Bearer {service_key}").status_code == 200
