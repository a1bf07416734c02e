"""Which client sent data last: the `bot` of `/api/system/status`.

Ingest clients may name themselves with two optional request headers:
`X-Client-Platform` (e.g. `icqq`, `onebot`, `new-api`) and `X-Client-Account`
(the bot's own account, the document's `uin`). Every successful ingest request
refreshes the one `IngestSource` row: its time always, the platform and account
when the request named them (so a client that does not name itself, such as a
batch import, does not erase the bot's name).

The row lives in the database so every server process reports the same source.
It is written outside the ingest transaction and at most once per
WRITE_EVERY_SECONDS per process for an unchanged source: thousands of ingest
requests a minute cost a couple of single-row UPDATEs a minute.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from statsite.models import IngestSource

logger = logging.getLogger("statsite.system")

PLATFORM_HEADER = "HTTP_X_CLIENT_PLATFORM"
ACCOUNT_HEADER = "HTTP_X_CLIENT_ACCOUNT"
PLATFORM_MAX = IngestSource._meta.get_field("platform").max_length
ACCOUNT_MAX = IngestSource._meta.get_field("account").max_length


def write_every_seconds() -> float:
    """How stale the stored time may get: small against the "connected" window, so
    `bot.connected` is off by at most this much."""
    return min(30.0, settings.BOT_CONNECTED_WINDOW_SECONDS / 5)


def clean_header(raw: str | None, limit: int) -> str | None:
    """A header value as text: None when absent or blank; UTF-8 bytes (which servers
    hand over decoded as Latin-1) read back as UTF-8; control characters (NUL among
    them, which PostgreSQL refuses) dropped; cut to LIMIT characters."""
    if raw is None:
        return None
    try:
        text = raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        text = raw
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    return text[:limit] or None


@dataclass
class _LastWrite:
    identity: tuple[str, str] | None = None
    at: float = float("-inf")


_last = _LastWrite()
_lock = threading.Lock()


def forget() -> None:
    """Forget this process's last write (tests start from an empty table each time)."""
    global _last
    with _lock:
        _last = _LastWrite()


def note_ingest_source(request: HttpRequest) -> None:
    """Record that REQUEST (a successful ingest) came from its client. Never raises:
    the data is already committed, and a lost refresh is corrected by the next one."""
    platform = clean_header(request.META.get(PLATFORM_HEADER), PLATFORM_MAX)
    account = clean_header(request.META.get(ACCOUNT_HEADER), ACCOUNT_MAX)
    identity = (platform or "", account or "") if (platform or account) else None
    now = time.monotonic()
    with _lock:
        fresh = now - _last.at < write_every_seconds()
        if fresh and (identity is None or identity == _last.identity):
            return
        _last.at = now
        if identity is not None:
            _last.identity = identity
    try:
        _store(identity)
    except DatabaseError:
        # Reporting the source is a nicety; the ingest itself has succeeded.
        logger.warning("could not record the ingest source", exc_info=True)
        forget()


def _store(identity: tuple[str, str] | None) -> None:
    seen_at = timezone.now()
    fields = {"seen_at": seen_at}
    if identity is not None:
        fields.update(platform=identity[0], account=identity[1])
    rows = IngestSource.objects.filter(pk=IngestSource.SINGLETON)
    if rows.update(**fields):
        return
    try:
        with transaction.atomic():
            IngestSource.objects.create(pk=IngestSource.SINGLETON, **fields)
    except IntegrityError:
        # Another process created the row meanwhile: refresh theirs instead.
        rows.update(**fields)


@dataclass(frozen=True)
class Source:
    connected: bool
    platform: str | None
    account: str | None
    seen_at: datetime | None


def current_source() -> Source:
    """The latest source, and whether it sent data within BOT_CONNECTED_WINDOW_SECONDS."""
    row = IngestSource.objects.filter(pk=IngestSource.SINGLETON).first()
    if row is None:
        return Source(connected=False, platform=None, account=None, seen_at=None)
    age = (timezone.now() - row.seen_at).total_seconds()
    return Source(
        connected=age <= settings.BOT_CONNECTED_WINDOW_SECONDS,
        platform=row.platform or None,
        account=row.account or None,
        seen_at=row.seen_at,
    )
