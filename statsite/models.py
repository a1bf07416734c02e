"""Credentials that resolve to an account (personal access tokens) or to the
installation as a whole (service keys). Only digests are stored."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, models
from django.db.models import Q
from django.utils import timezone

from statsite import credentials
from statsite.querysets import rows_by_shape

# last_used_at is refreshed at most this often, so authentication does not
# turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class CredentialQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class Credential(models.Model):
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True, help_text="Visible start of the key, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = CredentialQuerySet.as_manager()

    key_prefix = ""  # set by subclasses

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > LAST_USED_RESOLUTION:
            type(self).objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    def set_new_secret(self) -> str:
        """Give this credential a fresh secret and return it: the only time it is seen."""
        raw = credentials.new_secret(self.key_prefix)
        self.prefix = credentials.lookup_prefix(raw, self.key_prefix)
        self.key_hash = credentials.digest(raw)
        return raw

    @classmethod
    def find(cls, raw: str):
        """The active credential whose secret is RAW, or None."""
        # Secrets are printable ASCII; anything else (a NUL, which PostgreSQL refuses
        # in a query parameter, or latin-1 bytes) cannot be one and never reaches the database.
        if not raw.startswith(cls.key_prefix) or not (raw.isascii() and raw.isprintable()):
            return None
        prefix = credentials.lookup_prefix(raw, cls.key_prefix)
        for candidate in cls._candidates(prefix):
            if credentials.same_digest(raw, candidate.key_hash):
                return candidate
        return None

    # Related rows loaded with the credential (the account a token acts as).
    find_related: tuple[str, ...] = ()

    @classmethod
    def _candidates(cls, prefix: str) -> list[Credential]:
        """The active credentials whose secret begins with PREFIX, each with its
        find_related rows. Every authenticated request asks: the SQL is compiled once
        (statsite.querysets.rows_by_shape; a look-up took 0.8-1.1 ms through a
        queryset, most of it Django's), and the rows loaded as the ORM loads them."""
        parts = [(None, cls), *((name, cls._meta.get_field(name).related_model) for name in cls.find_related)]
        names = [[f.attname for f in model._meta.concrete_fields] for _, model in parts]
        columns = [f"{name}__{attname}" if name else attname for (name, _), own in zip(parts, names) for attname in own]
        rows = rows_by_shape(
            (cls, "find"), (Q(prefix=prefix),), lambda where: cls.objects.active().filter(where).values_list(*columns)
        )
        found = []
        for row in rows:
            loaded, at = [], 0
            for (_, model), own in zip(parts, names):
                loaded.append(model.from_db(DEFAULT_DB_ALIAS, own, row[at : at + len(own)]))
                at += len(own)
            credential, *related = loaded
            for (name, _), obj in zip(parts[1:], related):
                setattr(credential, name, obj)
            found.append(credential)
        return found

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AccessToken(Credential):
    """A personal access token: `Authorization: Bearer sst_…` acts as its account."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")

    key_prefix = credentials.TOKEN_PREFIX
    find_related = ("user",)

    class Meta:
        verbose_name = "personal access token"


class ServiceKey(Credential):
    """A service API key: `X-API-Key` or Bearer; acts for the whole installation."""

    key_prefix = credentials.SERVICE_KEY_PREFIX

    class Meta:
        verbose_name = "service API key"


class IngestSource(models.Model):
    """The most recent data source: one row (pk 1), refreshed by the ingest endpoints.

    `/api/system/status` reports it as `bot`: connected when `seen_at` is recent,
    with the platform and account the client named in `X-Client-Platform` and
    `X-Client-Account`. Kept in the database, not a per-process cache, so every
    server process reports the same source; each process writes it at most once
    per `statsite.system.sources.WRITE_EVERY_SECONDS`, so ingest is not slowed.
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    platform = models.CharField(max_length=64, blank=True)
    account = models.CharField(max_length=128, blank=True)
    seen_at = models.DateTimeField(help_text="When an ingest request last succeeded.")

    class Meta:
        verbose_name = "ingest source"

    def __str__(self) -> str:
        who = " ".join(part for part in (self.platform, self.account) if part) or "unnamed client"
        return f"{who} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
