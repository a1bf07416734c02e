"""issue_token, create_api_key and firstrun: their output and their effect."""

from __future__ import annotations

import io
import json
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from statsite import credentials
from statsite.models import AccessToken, ServiceKey

pytestmark = pytest.mark.django_db


def run(*args, **kwargs) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue().strip().splitlines()


def test_issue_token_creates_the_account_and_prints_the_token_last(api):
    lines = run("issue_token", "carol")
    raw = lines[-1]
    user = get_user_model().objects.get(username="carol")
    assert raw.startswith(credentials.TOKEN_PREFIX)
    assert not user.is_staff
    assert not user.has_usable_password()
    token = AccessToken.objects.get(user=user)
    assert token.key_hash == credentials.digest(raw)
    assert raw not in token.key_hash and token.prefix == raw[: len(token.prefix)]
    # The printed token works, as a user token (not an admin one).
    response = api.post("/api/ingest/logs", {"type": 5}, format="json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403


def test_issue_token_with_admin_makes_a_staff_account_whose_token_can_ingest(api):
    raw = run("issue_token", "dana", "--admin", "--name", "ops")[-1]
    user = get_user_model().objects.get(username="dana")
    assert user.is_staff
    assert AccessToken.objects.get(user=user).name == "ops"
    response = api.post("/api/ingest/logs", {"type": 5}, format="json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 201


def test_issue_token_for_an_existing_account_adds_a_token_and_keeps_its_password(make_user):
    user = make_user("erin")
    user.set_password("s3cret-pass")
    user.save()
    first = run("issue_token", "erin")[-1]
    second = run("issue_token", "erin")[-1]
    assert first != second
    assert AccessToken.objects.filter(user=user).count() == 2
    user.refresh_from_db()
    assert user.check_password("s3cret-pass")


def test_issue_token_refuses_an_invalid_username():
    with pytest.raises(CommandError, match="Invalid username"):
        run("issue_token", "not a name!")


def test_create_api_key_prints_a_working_service_key_last(api):
    lines = run("create_api_key", "bot")
    raw = lines[-1]
    key = ServiceKey.objects.get(name="bot")
    assert raw.startswith(credentials.SERVICE_KEY_PREFIX)
    assert key.key_hash == credentials.digest(raw)
    assert "not shown again" in lines[0]
    response = api.post("/api/ingest/logs", {"type": 5}, format="json", HTTP_X_API_KEY=raw)
    assert response.status_code == 201


def test_create_api_key_refuses_an_empty_name():
    with pytest.raises(CommandError):
        run("create_api_key", "  ")


def test_firstrun_creates_an_admin_and_writes_credentials_readable_by_the_owner_only(settings, tmp_path, client):
    settings.VAR_DIR = tmp_path
    output = "\n".join(run("firstrun", "--no-demo"))
    path = tmp_path / "demo-credentials.json"
    creds = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert creds["password"] in output and creds["token"] in output and creds["service_key"] in output
    assert "/admin/" in output
    admin = get_user_model().objects.get(username=creds["username"])
    assert admin.is_staff and admin.is_superuser and admin.check_password(creds["password"])
    assert client.login(username=creds["username"], password=creds["password"])


def test_firstrun_a_second_time_prints_the_same_credentials_and_creates_nothing(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    run("firstrun", "--no-demo")
    tokens, keys = AccessToken.objects.count(), ServiceKey.objects.count()
    creds = json.loads((tmp_path / "demo-credentials.json").read_text())
    output = "\n".join(run("firstrun", "--no-demo"))
    assert creds["password"] in output
    assert (AccessToken.objects.count(), ServiceKey.objects.count()) == (tokens, keys)
