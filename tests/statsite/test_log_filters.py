"""The server's console log: a client's mistake in one line, a server error with
its traceback (statsite.log_filters, wired in settings.LOGGING)."""

from __future__ import annotations

import io
import logging

import pytest
from django.contrib.auth import get_user_model

from statsite.log_filters import ClientErrorsBrief


@pytest.fixture
def console():
    """What the configured console handler writes, while the test runs."""
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, ClientErrorsBrief) for f in h.filters)]
    assert len(handlers) == 1, "settings.LOGGING's console handler carries the filter"
    buffer = io.StringIO()
    previous = handlers[0].setStream(buffer)
    yield buffer
    handlers[0].setStream(previous)


def test_a_host_not_served_is_one_line(client, console):
    response = client.get("/api/system/health", HTTP_HOST="evil.example")
    assert response.status_code == 400
    lines = console.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "ERROR django.security.DisallowedHost Invalid HTTP_HOST header: 'evil.example'" in lines[0]


def test_a_refused_staff_page_is_one_line(client, console, db):
    staff = get_user_model().objects.create_user("clerk", is_staff=True)  # no permission on logs
    client.force_login(staff)
    response = client.get("/admin/logs/log/")
    assert response.status_code == 403
    lines = console.getvalue().splitlines()
    assert lines == [line for line in lines if "Traceback" not in line and not line.startswith(" ")]
    assert any("WARNING django.request Forbidden (Permission denied): /admin/logs/log/" in line for line in lines)


def test_a_server_error_keeps_its_traceback(console):
    try:
        raise RuntimeError("boom")
    except RuntimeError as error:
        logging.getLogger("django.request").error(
            "Internal Server Error: %s", "/x", exc_info=error, extra={"status_code": 500}
        )
    text = console.getvalue()
    assert "Internal Server Error: /x" in text and "Traceback (most recent call last)" in text
    assert "RuntimeError: boom" in text


def test_other_records_with_a_traceback_keep_it(console):
    try:
        raise ValueError("kept")
    except ValueError:
        logging.getLogger("statsite.ingest").exception("retrying")
    assert "ValueError: kept" in console.getvalue()
