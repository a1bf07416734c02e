"""Secrets: how raw keys are made, shown and kept.

Every credential is a long random string, so a plain SHA-256 of it is enough to
keep at rest (no salt or slow hash is needed for 190+ bits of entropy, and it
lets a key be found by an index). Candidates are looked up by a short visible
prefix and then compared in constant time with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "sst_"  # personal access tokens
SERVICE_KEY_PREFIX = "ssk_"  # service API keys
RELAY_KEY_PREFIX = "sk-"  # LLM relay keys, as gateways issue them
LOOKUP_CHARS = 8  # random characters after the prefix that are kept visible


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def same_digest(raw: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(raw), stored_digest)


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def lookup_prefix(raw: str, prefix: str) -> str:
    """The visible part of a key: its kind prefix and the first random characters."""
    return raw[: len(prefix) + LOOKUP_CHARS]


def canonical_relay_key(raw: str) -> str:
    """Relay keys are accepted with or without `sk-`; they are kept with it."""
    raw = raw.strip()
    if raw.startswith(RELAY_KEY_PREFIX):
        return raw
    return RELAY_KEY_PREFIX + raw


def relay_key_hint(canonical: str) -> str:
    """What the admin may show of a relay key: enough to tell keys apart, never enough to use one."""
    if len(canonical) <= 12:
        return canonical[:4] + "…"
    return f"{canonical[:7]}…{canonical[-4:]}"
