"""The settings module refuses bad environment values, and is deploy-clean with production values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from statsite import settings as app_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw, expected", [("true", True), ("0", False), ("Yes", True), ("off", False)])
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert app_settings.env_bool("X_FLAG", not expected) is expected


def test_env_bool_refuses_anything_else(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        app_settings.env_bool("X_FLAG", False)


def test_env_int_refuses_words_and_values_below_the_minimum(monkeypatch):
    monkeypatch.setenv("X_NUM", "lots")
    with pytest.raises(ImproperlyConfigured, match="X_NUM"):
        app_settings.env_int("X_NUM", 1)
    monkeypatch.setenv("X_NUM", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        app_settings.env_int("X_NUM", 5, minimum=1)
    monkeypatch.setenv("X_NUM", " 42 ")
    assert app_settings.env_int("X_NUM", 5) == 42


def test_env_time_zone_refuses_an_unknown_zone(monkeypatch):
    monkeypatch.setenv("X_TZ", "Mars/Olympus")
    with pytest.raises(ImproperlyConfigured, match="X_TZ"):
        app_settings.env_time_zone("X_TZ", "UTC")
    monkeypatch.setenv("X_TZ", "Asia/Shanghai")
    assert app_settings.env_time_zone("X_TZ", "UTC") == "Asia/Shanghai"


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    assert app_settings.env_list("X_LIST", []) == ["a", "b", "c"]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True,
        timeout=120,
    )


def test_a_bad_value_stops_start_up_with_a_message_naming_the_variable(tmp_path):
    result = _manage("check", QUOTA_PER_UNIT="half", STATSITE_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "QUOTA_PER_UNIT" in result.stderr


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="false",
        SECRET_KEY="x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
        ALLOWED_HOSTS="stats.example.com",
        STATSITE_HTTPS="true",
        STATSITE_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout
