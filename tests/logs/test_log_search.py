"""GET /api/log/search (admin) and GET /api/log/self/search (user): keyword search."""

from __future__ import annotations

import pytest

from logs.models import Log
from tests.logs.logapi_support import (  # noqa: F401 - fresh_throttles is an autouse fixture
    at,
    fresh_throttles,
    many_calls,
    record_calls,
    record_other_logs,
)

pytestmark = pytest.mark.django_db

SEARCH = "/api/log/search"
SELF_SEARCH = "/api/log/self/search"


@pytest.fixture
def rows(user_a, user_b):
    calls = record_calls(
        {"username": "alice", "content": "GPT-4调用成功", "created_at": at(10), "channel_id": 1,
         "ip": "10.0.0.1", "other": {"admin_info": {"x": 1}, "model_ratio": 2}},
        {"username": "bob", "content": "Claude call ok", "model_name": "claude-3", "created_at": at(20)},
        {"username": "alice", "content": "API调用错误", "success": False, "created_at": at(30)},
        {"username": "bob", "content": "100% done_now 'quoted' \"double\"", "created_at": at(40)},
    )  # fmt: skip
    others = record_other_logs(
        {"type": 1, "username": "alice", "content": "topped up", "created_at": at(50)},
        {"type": 3, "username": "bob", "content": "Error budget reset", "created_at": at(60)},
        {"type": 5, "content": "系统启动", "created_at": at(70)},
    )
    names = ["alice_gpt", "bob_claude", "alice_error", "bob_percent", "alice_topup", "bob_manage", "system"]
    return dict(zip(names, calls + others))


def found(response) -> list[int]:
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and isinstance(body["data"], list)
    return [item["id"] for item in body["data"]]


def test_the_documents_admin_example_finds_error_logs_newest_first(api, rows, admin_headers):
    response = api.get(SEARCH + "?keyword=error", **admin_headers)
    # type 4 by name, or "error" in the content in any case
    assert found(response) == [rows["bob_manage"].id, rows["alice_error"].id]
    item = response.json()["data"][1]
    assert {"id", "type", "content", "username", "created_at"} <= set(item)
    assert (item["type"], item["content"], item["username"]) == (4, "API调用错误", "alice")


def test_the_documents_self_example_matches_content_in_any_case(api, rows, user_a_headers):
    response = api.get(SELF_SEARCH + "?keyword=gpt-4", **user_a_headers)
    assert found(response) == [rows["alice_gpt"].id]
    (item,) = response.json()["data"]
    assert {"id", "type", "content", "model_name", "created_at"} <= set(item)
    assert not {"channel_id", "channel_name", "ip"} & set(item)
    assert item["other"] == '{"model_ratio":2}'


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("1", ["alice_topup", "bob_percent"]),  # type 1, or "1" in "100%"
        ("topup", ["alice_topup"]),
        ("充值", ["alice_topup"]),
        ("2", ["bob_percent", "bob_claude", "alice_gpt"]),
        ("Consume", ["bob_percent", "bob_claude", "alice_gpt"]),
        ("消费", ["bob_percent", "bob_claude", "alice_gpt"]),
        ("MANAGE", ["bob_manage"]),
        ("管理", ["bob_manage"]),
        ("错误", ["alice_error"]),
        ("system", ["system"]),
        ("系统", ["system"]),
        ("调用", ["alice_error", "alice_gpt"]),
        ("CLAUDE", ["bob_claude"]),
        ("%", ["bob_percent"]),
        ("_", ["bob_percent"]),
        ("100%", ["bob_percent"]),
        ("'quoted'", ["bob_percent"]),
        ('"double"', ["bob_percent"]),
        ("nothing like it", []),
        ("0", ["bob_percent"]),  # no type 0: only the content "100%" matches
    ],
)
def test_a_keyword_matches_a_type_by_number_or_name_or_the_content(api, rows, admin_headers, keyword, expected):
    assert found(api.get(SEARCH, {"keyword": keyword}, **admin_headers)) == [rows[name].id for name in expected]


@pytest.mark.parametrize("path", [SEARCH, SELF_SEARCH])
def test_a_blank_or_absent_keyword_matches_every_row(api, rows, path, admin_headers, user_a_headers):
    headers = admin_headers if path == SEARCH else user_a_headers
    expected = 7 if path == SEARCH else 3
    assert len(found(api.get(path, **headers))) == expected
    assert len(found(api.get(path, {"keyword": "  "}, **headers))) == expected


def test_a_user_only_ever_finds_their_own_rows(api, rows, user_a_headers, user_b_headers):
    assert found(api.get(SELF_SEARCH, {"keyword": "2"}, **user_a_headers)) == [rows["alice_gpt"].id]
    assert found(api.get(SELF_SEARCH, {"keyword": "error"}, **user_a_headers)) == [rows["alice_error"].id]
    assert found(api.get(SELF_SEARCH, {"keyword": "error"}, **user_b_headers)) == [rows["bob_manage"].id]
    assert found(api.get(SELF_SEARCH, {"keyword": "系统"}, **user_a_headers)) == []


@pytest.mark.parametrize("path", [SEARCH, SELF_SEARCH])
def test_results_are_paged_with_p_and_page_size(api, user_a, path, admin_headers, user_a_headers):
    headers = admin_headers if path == SEARCH else user_a_headers
    many_calls(130, username="alice", content="needle")
    newest_first = list(Log.objects.order_by("-created_at", "-id").values_list("id", flat=True))
    assert found(api.get(path, {"keyword": "needle"}, **headers)) == newest_first[:20]
    assert found(api.get(path, {"keyword": "needle", "p": 3, "page_size": 7}, **headers)) == newest_first[14:21]
    assert found(api.get(path, {"keyword": "needle", "page_size": 500}, **headers)) == newest_first[:100]
    assert found(api.get(path, {"keyword": "needle", "p": 2, "page_size": 100}, **headers)) == newest_first[100:]
    assert found(api.get(path, {"keyword": "needle", "p": 3, "page_size": 100}, **headers)) == []


@pytest.mark.parametrize("path", [SEARCH, SELF_SEARCH])
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"keyword": "x" * 201}, "keyword"),
        ({"keyword": "a\x00b"}, "keyword"),
        ({"p": 0}, "p"),
        ({"p": "one"}, "p"),
        ({"page_size": -1}, "page_size"),
    ],
)
def test_bad_parameters_answer_400_naming_them(api, path, params, named, admin_headers, user_a_headers):
    headers = admin_headers if path == SEARCH else user_a_headers
    response = api.get(path, params, **headers)
    assert response.status_code == 400
    assert response.json()["success"] is False and response.json()["message"].startswith(f"{named}:")


@pytest.mark.parametrize("path", [SEARCH, SELF_SEARCH])
def test_searches_are_throttled_per_account_in_the_gateway_envelope(
    api, settings, path, admin, user_a, admin_headers, user_a_headers, user_b_headers
):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "log_search": "2/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    headers = admin_headers if path == SEARCH else user_a_headers
    assert api.get(path, {"keyword": "x"}, **headers).status_code == 200
    assert api.get(path, {"keyword": "x"}, **headers).status_code == 200
    response = api.get(path, {"keyword": "x"}, **headers)
    assert response.status_code == 429
    assert response.json()["success"] is False and "throttled" in response.json()["message"]
    assert 0 < int(response["Retry-After"]) <= 60
    # Another account has a budget of its own.
    assert api.get(SELF_SEARCH, {"keyword": "x"}, **user_b_headers).status_code == 200


def test_the_search_rate_comes_from_the_settings(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["log_search"] == "30/min"


@pytest.mark.parametrize("path", [SEARCH, SELF_SEARCH])
def test_a_search_page_costs_the_same_queries_for_any_size(
    api, user_a, path, admin_headers, user_a_headers, django_assert_max_num_queries
):
    headers = admin_headers if path == SEARCH else user_a_headers
    record_calls(*[{"username": "alice", "content": "needle", "channel_id": i % 3 + 1, "created_at": at(i)}
                   for i in range(50)])  # fmt: skip
    api.get(path, {"keyword": "zzz"}, **headers)
    with django_assert_max_num_queries(2):  # token lookup + page
        assert len(found(api.get(path, {"keyword": "needle", "page_size": 50}, **headers))) == 50
