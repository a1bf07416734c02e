"""issue_token, create_api_key and firstrun: their output and their effect."""

from __future__ import annotations

import io
import json
import stat
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from logs.models import Log
from statsite import credentials
from statsite.management.commands.firstrun import credentials_path
from statsite.models import AccessToken, ServiceKey
from tests.statsite.test_admin import fast_passwords  # noqa: F401
from tests.statsite.test_seed_demo import frozen_now  # noqa: F401

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


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def stored() -> dict[str, str]:
    return json.loads(credentials_path().read_text())


def test_firstrun_creates_an_admin_and_writes_credentials_readable_by_the_owner_only(var_dir, client, api):
    output = "\n".join(run("firstrun", "--no-demo"))
    path = credentials_path()
    creds = stored()
    assert path.parent == var_dir
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert creds["password"] in output and creds["token"] in output and creds["service_key"] in output
    assert "/admin/" in output and "Try:" in output
    admin = get_user_model().objects.get(username=creds["username"])
    assert creds["username"] == "admin"
    assert admin.is_staff and admin.is_superuser and admin.check_password(creds["password"])
    assert client.login(username=creds["username"], password=creds["password"])
    response = api.post("/api/ingest/logs", {"type": 5}, format="json", HTTP_X_API_KEY=creds["service_key"])
    assert response.status_code == 201
    response = api.get("/api/log/", HTTP_AUTHORIZATION=f"Bearer {creds['token']}")
    assert response.status_code == 200 and response.json()["success"] is True


def test_firstrun_a_second_time_prints_the_same_credentials_and_creates_nothing(var_dir):
    run("firstrun", "--no-demo")
    tokens, keys, users = AccessToken.objects.count(), ServiceKey.objects.count(), get_user_model().objects.count()
    creds = stored()
    output = "\n".join(run("firstrun", "--no-demo"))
    assert creds["password"] in output and creds["token"] in output and creds["service_key"] in output
    assert stored() == creds
    assert (AccessToken.objects.count(), ServiceKey.objects.count()) == (tokens, keys)
    assert get_user_model().objects.count() == users


def test_firstrun_on_a_new_database_replaces_credentials_that_work_nowhere_in_it(var_dir):
    """A database deleted (or DATABASE_URL changed) while var/ kept the old file: the old
    credentials are not printed as if they worked; the database gets its own first run."""
    run("firstrun", "--no-demo")
    old = stored()
    get_user_model().objects.all().delete()  # what a fresh database holds
    ServiceKey.objects.all().delete()
    err = io.StringIO()
    output = "\n".join(run("firstrun", "--no-demo", stderr=err))
    new = stored()
    assert "were made for another database" in err.getvalue()
    assert new != old
    for secret in ("password", "token", "service_key"):
        assert old[secret] not in output and new[secret] in output
    assert get_user_model().objects.get(username="admin").check_password(new["password"])


def test_firstrun_loads_demo_data_on_the_first_run_of_an_empty_database_only(var_dir, frozen_now):
    output = "\n".join(run("firstrun"))
    assert "loading demo data" in output
    logs = Log.objects.count()
    assert logs > 0
    assert "loading demo data" not in "\n".join(run("firstrun"))
    assert Log.objects.count() == logs


def test_firstrun_never_changes_an_existing_account_named_admin(var_dir):
    """An account that was there before (a gateway user called "admin", say) keeps its
    password and rights; the demo administrator takes the next free name."""
    User = get_user_model()
    theirs = User.objects.create_user(username="admin", password="their-own")
    User.objects.create_user(username="admin-2")
    run("firstrun", "--no-demo")
    theirs.refresh_from_db()
    assert theirs.check_password("their-own") and not theirs.is_staff and not theirs.is_superuser
    creds = stored()
    assert creds["username"] == "admin-3"
    assert User.objects.get(username="admin-3").is_superuser


def test_firstrun_shows_only_the_credentials_that_still_work(var_dir):
    run("firstrun", "--no-demo")
    creds = stored()
    admin = get_user_model().objects.get(username=creds["username"])
    admin.set_password("changed")
    admin.save()
    AccessToken.objects.get(user=admin).revoke()
    output = "\n".join(run("firstrun", "--no-demo"))
    assert creds["password"] not in output and "password was changed" in output
    assert creds["token"] not in output and "issue_token admin --admin" in output
    assert creds["service_key"] in output and "Try:" in output

    ServiceKey.objects.get(name="demo service key").revoke()
    admin.is_staff = False
    admin.save()
    users = get_user_model().objects.count()
    output = "\n".join(run("firstrun", "--no-demo"))
    assert creds["service_key"] not in output and "create_api_key" in output and "Try:" not in output
    assert "'admin' is disabled or no longer staff" in output
    # Nothing works, but this is the database they were made in: nothing is made anew.
    assert stored() == creds
    assert get_user_model().objects.count() == users and ServiceKey.objects.active().count() == 0


def test_firstrun_reads_a_file_written_before_it_recorded_the_join_time(var_dir):
    run("firstrun", "--no-demo")
    creds = stored()
    legacy = {k: v for k, v in creds.items() if k != "joined"}
    credentials_path().write_text(json.dumps(legacy))
    output = "\n".join(run("firstrun", "--no-demo"))
    assert creds["password"] in output and stored() == legacy  # its credentials work: kept
    get_user_model().objects.all().delete()
    ServiceKey.objects.all().delete()
    output = "\n".join(run("firstrun", "--no-demo", stderr=io.StringIO()))
    assert creds["password"] not in output and stored()["password"] in output


@pytest.mark.parametrize("text", ["", "{not json", "[]", '{"username": "admin"}', '{"username": 1, "password": "x", '
                                  '"token": "x", "service_key": "x"}', "\udcff"])
def test_firstrun_replaces_an_unreadable_credentials_file(var_dir, text):
    credentials_path().write_text(text, errors="surrogateescape")
    err = io.StringIO()
    output = "\n".join(run("firstrun", "--no-demo", stderr=err))
    assert "new credentials replace it" in err.getvalue()
    creds = stored()
    assert creds["password"] in output


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1", "80.5"])
def test_firstrun_refuses_a_port_that_is_not_one(var_dir, port):
    with pytest.raises(CommandError, match="--port must be a number from 1 to 65535"):
        run("firstrun", "--no-demo", "--port", port)
    assert not credentials_path().exists()


def test_the_default_database_keeps_its_credentials_in_demo_credentials_json(var_dir):
    """The SQLite file under var/ that `make run` uses has the plain name; any other
    database a file of its own, named after it, so neither overwrites the other's."""
    default = var_dir / "statsite.sqlite3"
    with mock.patch.object(connection, "vendor", "sqlite"), \
            mock.patch.dict(connection.settings_dict, {"NAME": str(default), "HOST": "", "PORT": ""}):
        assert credentials_path() == var_dir / "demo-credentials.json"
    with mock.patch.object(connection, "vendor", "postgresql"), \
            mock.patch.dict(connection.settings_dict, {"NAME": "statsite", "HOST": "db.example", "PORT": 5432}):
        assert credentials_path() == var_dir / "demo-credentials-postgresql-db-example-5432-statsite.json"


def test_firstrun_writes_an_ipv6_host_in_brackets(var_dir):
    output = "\n".join(run("firstrun", "--no-demo", "--host", "::1", "--port", "9000"))
    assert "http://[::1]:9000/admin/" in output
