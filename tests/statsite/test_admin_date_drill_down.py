"""The fact tables' admin date hierarchy (statsite.admin_utils.date_drill_down): the
same levels and links as Django's, drawn from the first and last row of the table
by two index probes. Django's own runs SELECT DISTINCT of the year, month or day
over every row the page selects: 1.5 s for the log list at ten million rows, and a
scan of the whole table under a search."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from logs.models import Log
from messaging.models import Chat, Message, Participant
from usage.models import ToolCall

pytestmark = pytest.mark.django_db

FACTS = [Log, ToolCall, Message]
# What a query of Django's date hierarchy looks like on each database.
DATE_TRUNCATION = re.compile(r"DATE_TRUNC|django_datetime_trunc|django_date_trunc", re.IGNORECASE)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def changelist(model, **params) -> str:
    path = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{path}?{query}" if query else path


def add(model, *moments: datetime) -> None:
    for n, at in enumerate(moments):
        if model is Log:
            Log.objects.create(created_at=at, type=2, content=f"call {n}", model_name="gpt-4o")
        elif model is ToolCall:
            ToolCall.objects.create(created_at=at, tool_id="weather", tool_name="Weather")
        else:
            chat, _ = Chat.objects.get_or_create(chat_id="g1", defaults={"name": "Friends"})
            sender, _ = Participant.objects.get_or_create(user_id="u1", defaults={"nickname": "Al"})
            Message.objects.create(created_at=at, chat=chat, sender=sender, message_id=f"m{n}", text="hi")


def drill_down(admin_client, model, **params) -> tuple[list[tuple[str, str]], str | None, list[str]]:
    """(title, link) of each choice, the back link's title, and the SQL the page sent."""
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(changelist(model, **params))
    assert response.status_code == 200
    page = response.content.decode()
    nav = re.search(r'<nav class="toplinks">(.*?)</nav>', page, re.DOTALL)
    if nav is None:
        return [], None, [q["sql"] for q in queries.captured_queries]
    back = re.search(r'class="date-back">&lsaquo; ([^<]+)</a>', nav.group(1))
    choices = re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav.group(1))
    sql = [q["sql"] for q in queries.captured_queries]
    return [(title, link) for link, title in choices], back and back.group(1), sql


@pytest.mark.parametrize("model", FACTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    "params",
    [{}, {"q": "call"}, {"created_at__year": "2025"}, {"created_at__year": "2025", "created_at__month": "2"},
     {"created_at__year": "2025", "created_at__month": "2", "created_at__day": "2"}],
    ids=["top", "searched", "year", "month", "day"],
)  # fmt: skip
def test_no_level_truncates_the_dates_of_the_rows(admin_client, model, params):
    add(model, datetime(2024, 12, 31, 10, tzinfo=UTC), datetime(2025, 2, 2, 10, tzinfo=UTC))
    _, _, sql = drill_down(admin_client, model, **params)
    assert not [s for s in sql if DATE_TRUNCATION.search(s)], sql


def test_rows_over_two_years_offer_the_years(admin_client):
    add(Log, datetime(2024, 12, 31, 10, tzinfo=UTC), datetime(2025, 2, 2, 10, tzinfo=UTC))
    choices, back, _ = drill_down(admin_client, Log)
    assert [title for title, _ in choices] == ["2024", "2025"]
    assert back is None
    assert "created_at__year=2025" in choices[1][1]


def test_a_year_offers_its_months_from_the_first_row_to_the_last(admin_client):
    add(Log, datetime(2024, 12, 31, 10, tzinfo=UTC), datetime(2025, 2, 2, 10, tzinfo=UTC))
    choices, back, _ = drill_down(admin_client, Log, created_at__year="2025")
    assert [title for title, _ in choices] == ["January 2025", "February 2025"]
    assert back == "All dates"
    choices, _, _ = drill_down(admin_client, Log, created_at__year="2024")
    assert [title for title, _ in choices] == ["December 2024"]


def test_a_month_offers_its_days_up_to_the_last_row(admin_client):
    add(Log, datetime(2024, 12, 31, 10, tzinfo=UTC), datetime(2025, 2, 2, 10, tzinfo=UTC))
    choices, back, _ = drill_down(admin_client, Log, created_at__year="2025", created_at__month="2")
    assert [title for title, _ in choices] == ["February 1", "February 2"]
    assert back == "2025"
    assert "created_at__day=2" in choices[1][1] and "created_at__month=2" in choices[1][1]
    # A month before the first row offers no day.
    choices, _, _ = drill_down(admin_client, Log, created_at__year="2024", created_at__month="11")
    assert choices == []


def test_a_day_names_itself_and_leads_back_to_its_month(admin_client):
    add(Log, datetime(2025, 2, 2, 10, tzinfo=UTC))
    day = {"created_at__year": "2025", "created_at__month": "2", "created_at__day": "2"}
    choices, back, sql = drill_down(admin_client, Log, **day)
    assert choices == []  # the day itself is a title, not a link
    assert back == "February 2025"
    # Nor is the table's span looked up for it.
    assert not [s for s in sql if '"created_at" IS NULL' in s], sql


def test_rows_of_one_month_start_at_its_days_as_django_does(admin_client):
    add(Log, datetime(2025, 3, 1, 12, tzinfo=UTC), datetime(2025, 3, 3, 12, tzinfo=UTC))
    choices, back, _ = drill_down(admin_client, Log)
    assert [title for title, _ in choices] == ["March 1", "March 2", "March 3"]
    assert back == "2025"


def test_the_days_are_those_of_the_sites_time_zone(admin_client, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # UTC+9: 20:00 UTC on March 1 is March 2 there
    add(Log, datetime(2025, 3, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, 20, tzinfo=UTC))
    choices, _, _ = drill_down(admin_client, Log)
    assert [title for title, _ in choices] == ["March 1", "March 2"]


def test_a_search_keeps_the_tables_span(admin_client):
    # The choices are the table's, whatever the page selects: finding which hold a
    # selected row would be a scan of them.
    add(Log, datetime(2024, 12, 31, 10, tzinfo=UTC), datetime(2025, 2, 2, 10, tzinfo=UTC))
    choices, _, _ = drill_down(admin_client, Log, q="call 1")
    assert [title for title, _ in choices] == ["2024", "2025"]
    assert all("q=call" in link for _, link in choices)


def test_an_empty_table_offers_no_date(admin_client):
    choices, back, _ = drill_down(admin_client, Log)
    assert choices == [] and back is None
