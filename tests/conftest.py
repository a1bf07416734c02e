"""Shared fixtures: clients, every kind of caller, and the garbage collector held off;
tests that touch no database run in the SQLite run of the suite only."""

from __future__ import annotations

import gc

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from statsite.models import AccessToken, ServiceKey


# Fixtures through which a test reaches the database.
DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "live_server", "django_db_reset_sequences", "django_db_serialized_rollback"}
)


def pytest_collection_modifyitems(config, items):
    """Tests marked `database_free` (pure validation, thousands of generated examples)
    would only repeat on PostgreSQL what they did on SQLite: `make test` runs them in its
    SQLite run. A test so marked that asks for the database is a mistake in the mark."""
    for item in items:
        if item.get_closest_marker("database_free") is None:
            continue
        if item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(item.fixturenames):
            raise pytest.UsageError(f"{item.nodeid} is marked database_free but uses the database")
        if connection.vendor == "postgresql":
            item.add_marker(pytest.mark.skip(reason="touches no database: run in the SQLite run of the suite"))


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache (throttle counters, the purge horizon)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def issue_token(user, name: str = "test") -> str:
    token = AccessToken(user=user, name=name)
    raw = token.set_new_secret()
    token.save()
    return raw


def create_service_key(name: str = "test") -> str:
    key = ServiceKey(name=name)
    raw = key.set_new_secret()
    key.save()
    return raw


@pytest.fixture
def make_user(db):
    def make(username: str, *, staff: bool = False):
        return get_user_model().objects.create_user(username=username, password=None, is_staff=staff)

    return make


@pytest.fixture
def user_a(make_user):
    return make_user("alice")


@pytest.fixture
def user_b(make_user):
    return make_user("bob")


@pytest.fixture
def admin(make_user):
    return make_user("root", staff=True)


@pytest.fixture
def service_key(db) -> str:
    return create_service_key()


@pytest.fixture
def service_headers(service_key) -> dict[str, str]:
    return {"HTTP_X_API_KEY": service_key}


@pytest.fixture
def admin_headers(admin) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {issue_token(admin)}"}


@pytest.fixture
def user_a_headers(user_a) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user_a)}"}


@pytest.fixture
def user_b_headers(user_b) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {issue_token(user_b)}"}


@pytest.fixture
def post_json(api):
    """POST a JSON body (any value, even a list) and return the response."""

    def post(path: str, body, **headers):
        return api.post(path, data=body, format="json", **headers)

    return post


@pytest.fixture
def without_the_collector():
    """Only reference counting frees objects meanwhile: what the collector would
    free later (a cycle) stays."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()
