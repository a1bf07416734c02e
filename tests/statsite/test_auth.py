"""Who may ingest: every credential form, every way a credential is refused,
and how credentials are kept at rest."""

from __future__ import annotations

import hashlib

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.forms.models import model_to_dict
from django.utils import timezone as django_timezone
from rest_framework.test import APIClient

from logs.models import Log
from statsite import credentials
from statsite.models import AccessToken, ServiceKey
from tests.conftest import create_service_key, issue_token
from tests.ingest_support import ENDPOINTS, LLM_CALLS, MINIMAL, assert_nothing_stored, stored_counts

pytestmark = pytest.mark.django_db

CALL = {"model_name": "gpt-4o", "request_id": "auth-1"}


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def assert_stored(response) -> None:
    assert response.status_code == 201, response.content
    assert response.json() == {"received": 1, "created": 1, "duplicates": 0}
    assert Log.objects.filter(request_id="auth-1").exists()


def assert_refused(response, status: int) -> None:
    assert response.status_code == status, response.content
    assert set(response.json()) == {"detail"}
    assert not Log.objects.exists()


# --- accepted -----------------------------------------------------------------------


def test_a_service_key_in_x_api_key_may_ingest(post_json, service_key):
    assert_stored(post_json(LLM_CALLS, CALL, HTTP_X_API_KEY=service_key))


def test_a_service_key_as_a_bearer_token_may_ingest(post_json, service_key):
    assert_stored(post_json(LLM_CALLS, CALL, **bearer(service_key)))


def test_the_bearer_keyword_is_case_insensitive(post_json, service_key):
    assert_stored(post_json(LLM_CALLS, CALL, HTTP_AUTHORIZATION=f"bearer {service_key}"))


def test_an_admin_token_may_ingest(post_json, admin_headers):
    assert_stored(post_json(LLM_CALLS, CALL, **admin_headers))


@pytest.mark.parametrize("form", ["{id}", "Bearer {id}", " {id} "])
def test_an_admin_token_with_a_matching_new_api_user_may_ingest(form, post_json, admin):
    headers = bearer(issue_token(admin)) | {"HTTP_NEW_API_USER": form.format(id=admin.pk)}
    assert_stored(post_json(LLM_CALLS, CALL, **headers))


@pytest.mark.parametrize("header", ["HTTP_X_API_KEY", "HTTP_AUTHORIZATION"])
def test_a_key_from_the_environment_may_ingest(header, post_json, settings):
    settings.STATSITE_API_KEYS = ["first-env-key", "second-env-key-0123456789"]
    value = "second-env-key-0123456789"
    if header == "HTTP_AUTHORIZATION":
        value = f"Bearer {value}"
    assert_stored(post_json(LLM_CALLS, CALL, **{header: value}))


def test_an_environment_key_shaped_like_a_service_key_is_accepted(post_json, settings):
    settings.STATSITE_API_KEYS = ["ssk_from-the-environment"]
    assert_stored(post_json(LLM_CALLS, CALL, **bearer("ssk_from-the-environment")))


def test_an_environment_key_shaped_like_a_personal_token_is_accepted(post_json, settings):
    # Operators pick environment keys freely; the sst_ prefix must not hide them.
    settings.STATSITE_API_KEYS = ["sst_chosen-by-the-operator"]
    assert_stored(post_json(LLM_CALLS, CALL, **bearer("sst_chosen-by-the-operator")))


def test_a_staff_session_may_ingest(api, admin):
    api.force_login(admin)
    assert_stored(api.post(LLM_CALLS, CALL, format="json"))


def test_a_staff_session_must_send_the_csrf_token(admin):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)

    response = client.post(LLM_CALLS, CALL, format="json")

    assert_refused(response, 403)
    assert "CSRF" in response.json()["detail"]


def test_a_staff_session_with_the_csrf_token_may_ingest(admin):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    token = "k" * 32
    client.cookies[django_settings.CSRF_COOKIE_NAME] = token

    assert_stored(client.post(LLM_CALLS, CALL, format="json", HTTP_X_CSRFTOKEN=token))


# --- refused --------------------------------------------------------------------------


def test_no_credentials_are_refused_with_401(post_json):
    response = post_json(LLM_CALLS, CALL)
    assert_refused(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_API_KEY": "ssk_not-a-real-key"},
        {"HTTP_X_API_KEY": "anything"},
        {"HTTP_X_API_KEY": ""},
        {"HTTP_AUTHORIZATION": "Bearer ssk_not-a-real-key"},
        {"HTTP_AUTHORIZATION": "Bearer sst_not-a-real-token"},
        {"HTTP_AUTHORIZATION": "Bearer nonsense"},
        {"HTTP_AUTHORIZATION": "Bearer"},
        {"HTTP_AUTHORIZATION": "Bearer two words"},
    ],
    ids=["x-api-key", "x-api-key-free-form", "x-api-key-empty", "bearer-ssk", "bearer-sst", "bearer-free-form",
         "bearer-alone", "bearer-two-words"],
)
def test_wrong_credentials_are_refused_with_401(headers, post_json, service_key):
    assert_refused(post_json(LLM_CALLS, CALL, **headers), 401)


def test_a_near_miss_of_a_real_key_is_refused(post_json, service_key):
    # Same visible prefix, different secret: the digest must still be compared.
    near_miss = service_key[:-1] + ("A" if service_key[-1] != "A" else "B")
    assert_refused(post_json(LLM_CALLS, CALL, HTTP_X_API_KEY=near_miss), 401)


def test_a_personal_token_in_x_api_key_is_refused(post_json, admin):
    assert_refused(post_json(LLM_CALLS, CALL, HTTP_X_API_KEY=issue_token(admin)), 401)


def test_a_wrong_x_api_key_is_refused_even_beside_a_good_bearer_token(post_json, admin_headers):
    assert_refused(post_json(LLM_CALLS, CALL, HTTP_X_API_KEY="wrong", **admin_headers), 401)


@pytest.mark.parametrize("form", ["x_api_key", "bearer"])
def test_a_revoked_service_key_is_refused(form, post_json):
    raw = create_service_key("revoked")
    ServiceKey.objects.get().revoke()
    headers = {"HTTP_X_API_KEY": raw} if form == "x_api_key" else bearer(raw)
    assert_refused(post_json(LLM_CALLS, CALL, **headers), 401)


def test_a_revoked_admin_token_is_refused(post_json, admin):
    raw = issue_token(admin)
    AccessToken.objects.get(user=admin).revoke()
    assert_refused(post_json(LLM_CALLS, CALL, **bearer(raw)), 401)


def test_a_key_removed_from_the_environment_is_refused(post_json, settings):
    settings.STATSITE_API_KEYS = []
    assert_refused(post_json(LLM_CALLS, CALL, HTTP_X_API_KEY="first-env-key"), 401)


@pytest.mark.parametrize("sent", ["{other}", "Bearer {other}", "abc", "", "Bearer"])
def test_a_new_api_user_that_does_not_name_the_tokens_account_is_refused(sent, post_json, admin, user_a):
    headers = bearer(issue_token(admin)) | {"HTTP_NEW_API_USER": sent.format(other=user_a.pk)}
    assert_refused(post_json(LLM_CALLS, CALL, **headers), 401)


def test_a_token_of_an_inactive_admin_is_refused_with_401(post_json, admin):
    raw = issue_token(admin)
    admin.is_active = False
    admin.save()
    assert_refused(post_json(LLM_CALLS, CALL, **bearer(raw)), 401)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_non_staff_token_is_refused_with_403(path, post_json, user_a_headers):
    before = stored_counts()
    response = post_json(path, MINIMAL[path], **user_a_headers)
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert_nothing_stored(before)


def test_a_non_staff_session_is_refused_with_403(api, user_a):
    api.force_login(user_a)
    assert_refused(api.post(LLM_CALLS, CALL, format="json"), 403)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_ingest_endpoint_refuses_a_caller_without_credentials(path, post_json, db):
    before = stored_counts()
    response = post_json(path, MINIMAL[path])
    assert response.status_code == 401
    assert_nothing_stored(before)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_ingest_endpoint_accepts_a_service_key(path, post_json, service_headers):
    assert post_json(path, MINIMAL[path], **service_headers).status_code == 201


@pytest.mark.parametrize("path", ENDPOINTS)
def test_ingest_endpoints_answer_only_post(path, api, service_headers):
    assert api.get(path, **service_headers).status_code == 405


# --- at rest ------------------------------------------------------------------------------


def _row_text(obj) -> str:
    return repr(model_to_dict(obj)) + repr(vars(obj))


def test_a_service_key_is_kept_only_as_a_digest_and_a_short_prefix(service_key):
    row = ServiceKey.objects.get()
    assert service_key not in _row_text(row)
    assert row.key_hash == hashlib.sha256(service_key.encode()).hexdigest()
    assert row.prefix == service_key[: len(credentials.SERVICE_KEY_PREFIX) + credentials.LOOKUP_CHARS]
    assert len(row.prefix) < len(service_key) // 2


def test_a_personal_token_is_kept_only_as_a_digest_and_a_short_prefix(admin):
    raw = issue_token(admin)
    row = AccessToken.objects.get()
    assert raw not in _row_text(row)
    assert row.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert row.prefix == raw[: len(credentials.TOKEN_PREFIX) + credentials.LOOKUP_CHARS]
    assert len(row.prefix) < len(raw) // 2


def test_new_secrets_are_long_random_and_distinct():
    raws = {create_service_key(f"k{i}") for i in range(5)}
    assert len(raws) == 5
    assert all(len(raw) >= 40 for raw in raws)


def columns(row) -> list:
    return [getattr(row, field.attname) for field in row._meta.concrete_fields]


def test_a_credential_is_found_with_its_account_as_the_orm_loads_them(admin, user_a, django_assert_num_queries):
    raws = {issue_token(owner, name=owner.username) for owner in (admin, user_a, admin)}
    key = create_service_key("svc")
    AccessToken.objects.filter(name=user_a.username).update(revoked_at=django_timezone.now())

    for raw in raws:
        with django_assert_num_queries(1):
            token = AccessToken.find(raw)
            if token is not None:
                assert token.user.username  # loaded with the token
        stored = AccessToken.objects.select_related("user").get(key_hash=hashlib.sha256(raw.encode()).hexdigest())
        if stored.revoked_at is not None:
            assert token is None
            continue
        assert columns(token) == columns(stored) and columns(token.user) == columns(stored.user)
        assert not token._state.adding and not token.user._state.adding
    assert ServiceKey.find(key) == ServiceKey.objects.get()
    assert ServiceKey.find(key[:-1] + ("0" if key[-1] != "0" else "1")) is None


# --- last use --------------------------------------------------------------------------------


def test_using_a_service_key_records_when_it_was_last_used(post_json, service_key):
    assert ServiceKey.objects.get().last_used_at is None
    post_json(LLM_CALLS, CALL, HTTP_X_API_KEY=service_key)
    assert ServiceKey.objects.get().last_used_at is not None


def test_using_an_admin_token_records_when_it_was_last_used(post_json, admin):
    raw = issue_token(admin)
    assert AccessToken.objects.get().last_used_at is None
    post_json(LLM_CALLS, CALL, **bearer(raw))
    assert AccessToken.objects.get().last_used_at is not None


def test_a_token_refused_for_its_new_api_user_is_not_marked_used(post_json, admin, user_a):
    raw = issue_token(admin)
    response = post_json(LLM_CALLS, CALL, **bearer(raw), HTTP_NEW_API_USER=str(user_a.pk))
    assert response.status_code == 401
    assert AccessToken.objects.get().last_used_at is None


def test_accounts_created_by_ingest_cannot_sign_in(post_json, service_headers):
    post_json(LLM_CALLS, {"model_name": "m", "username": "carol"}, **service_headers)
    assert not get_user_model().objects.get(username="carol").has_usable_password()
