"""Who may call each log endpoint: no credentials, a bad token, a user, an admin, a service key.

Gateway endpoints are for accounts (user or admin): a service key acts for no
account, so it gets 403 there. Console endpoints take a service key or an admin.
Refusals keep the endpoint's envelope.
"""

from __future__ import annotations

import pytest

from tests.logs.logapi_support import at, fresh_throttles, record_calls  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.django_db

KEY = "sk-permission-test-key"

# (method, path, who may call it)
ENDPOINTS = [
    ("get", "/api/log/", "admin"),
    ("delete", "/api/log/?target_timestamp=1640908800", "admin"),
    ("get", "/api/log/stat", "admin"),
    ("get", "/api/log/search?keyword=x", "admin"),
    ("get", "/api/log/self", "account"),
    ("get", "/api/log/self/stat", "account"),
    ("get", "/api/log/self/search?keyword=x", "account"),
    ("get", f"/api/log/token?key={KEY}", "public"),
    ("get", "/api/logs", "console"),
    ("get", "/api/logs/tools", "console"),
    ("get", "/api/logs/errors", "console"),
]

ALLOWED = {
    "admin": {"admin"},
    "account": {"user", "admin"},
    "public": {"none", "bad token", "bad key", "user", "admin", "service", "service bearer"},
    "console": {"admin", "service", "service bearer"},
}


@pytest.fixture
def credentials(user_a_headers, admin_headers, service_key):
    return {
        "none": {},
        "bad token": {"HTTP_AUTHORIZATION": "Bearer sst_not-a-real-token"},
        "bad key": {"HTTP_X_API_KEY": "ssk_not-a-real-key"},
        "user": user_a_headers,
        "admin": admin_headers,
        "service": {"HTTP_X_API_KEY": service_key},
        "service bearer": {"HTTP_AUTHORIZATION": f"Bearer {service_key}"},
    }


def expected_status(caller: str, audience: str) -> int:
    if caller in ALLOWED[audience]:
        return 200
    if caller in {"none", "bad token", "bad key"}:
        return 401
    return 403


@pytest.mark.parametrize(("method", "path", "audience"), ENDPOINTS)
@pytest.mark.parametrize("caller", ["none", "bad token", "bad key", "user", "admin", "service", "service bearer"])
def test_every_endpoint_answers_each_kind_of_caller(api, credentials, method, path, audience, caller):
    record_calls({"token_key": KEY, "created_at": at(10)})
    response = getattr(api, method)(path, **credentials[caller])
    assert response.status_code == expected_status(caller, audience), response.json()
    body = response.json()
    if audience == "console":
        assert body["success"] is (response.status_code == 200)
        assert ("data" if response.status_code == 200 else "error") in body
    else:
        assert body["success"] is (response.status_code == 200) and "message" in body
    if response.status_code == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_admin_listing_its_own_logs_sees_only_its_own(api, admin, admin_headers, user_a):
    record_calls({"username": "alice", "created_at": at(1)}, {"username": "root", "created_at": at(2)})
    items = api.get("/api/log/self", **admin_headers).json()["data"]["items"]
    assert [item["username"] for item in items] == ["root"]
