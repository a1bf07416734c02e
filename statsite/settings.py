"""statsite settings: one module, read from the environment.

Every variable goes through a small typed helper that refuses bad values with a
message naming the variable, so a typo in production fails at start-up rather
than at 3 a.m. The README lists every variable.
"""

from __future__ import annotations

import os
import re
import secrets
import zoneinfo
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("STATSITE_VAR_DIR", BASE_DIR / "var"))

_env = environ.Env()


def _get(name: str, cast, default):
    """Read NAME with django-environ's CAST, naming the variable when it is bad."""
    try:
        return cast(name, default=default)
    except (ValueError, TypeError, environ.ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"{name}={os.environ.get(name)!r} is not valid: {exc}") from exc


def env_str(name: str, default: str) -> str:
    return _get(name, _env.str, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int | None, *, minimum: int = 0) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate: requests per second, minute, hour or day, e.g. 60/min."""
    value = env_str(name, default).strip()
    if not re.fullmatch(r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate; write requests/period, e.g. 60/min")
    return value


def env_time_zone(name: str, default: str) -> str:
    value = env_str(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not a known time zone") from exc
    return value


def _dev_secret_key() -> str:
    """A key generated once and kept under var/, so sessions survive restarts in development."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or _dev_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # The stock admin with a purge page added (statsite/admin_site.py); admin.site is still the site.
    "statsite.admin_site.StatsiteAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "statsite",
    "usage",
    "logs",
    "messaging",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "statsite.urls"
ASGI_APPLICATION = "statsite.asgi.application"
WSGI_APPLICATION = "statsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# SQLite under var/ by default; PostgreSQL (or anything Django supports) via DATABASE_URL.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'statsite.sqlite3'}")
try:
    _db = _env.db_url_config(DATABASE_URL)
except Exception as exc:  # django-environ raises several kinds for a malformed URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc

if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] not in ("", ":memory:"):
        Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    _db["OPTIONS"] = {
        # BEGIN IMMEDIATE takes the write lock up front, so concurrent ingest waits
        # for it (up to `timeout` seconds) instead of failing with "database is locked".
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A connection lives on for the next requests of its thread, and the server keeps its
    # request threads (statsite.request_threads): a new one costs the connect and its
    # PRAGMAs, and compiling the rollups' upserts again, 7 ms for the LLM calls'. A
    # single record's ingest took 17-19 ms through HTTP with a connection per request,
    # 7.0-8.4 ms with these; the cheapest answer 2.4 and 1.6 ms.
    _db["CONN_MAX_AGE"] = 600
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process (psycopg_pool, through Django): under ASGI each request runs on
    # a thread of its own, which would otherwise open a connection of its own every time.
    # Persistent connections (CONN_MAX_AGE) do not go with a pool.
    _db["CONN_MAX_AGE"] = 0
    _db["CONN_HEALTH_CHECKS"] = True  # a pooled connection is checked before it is handed out
    _db.setdefault("OPTIONS", {})["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
    # No JIT compilation: this app's queries read a few thousand rollup rows, where
    # compiling them (5-10 ms when the planner's estimate tips it over) costs more than
    # it saves. And room to sort and group a month of hourly rows (tens of thousands)
    # in memory, where the server's default of 4 MB spills them to disk. And one plan
    # for each prepared statement (the only ones are the rollups' apply statements,
    # usage.rollups.apply; Django's queries are not prepared): set per connection, it
    # costs no round trip per ingest request, where setting it per transaction cost one.
    _db["OPTIONS"]["options"] = (
        f"-c jit=off -c work_mem={env_int('DATABASE_WORK_MEM_MB', 16, minimum=1)}MB"
        " -c plan_cache_mode=force_generic_plan"
    )
    # At least the threads that query at once: a server process runs synchronous views
    # and the event stream's queries on two thread pools of min(32, cores + 4) each.
    DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=1)
    _db["OPTIONS"]["pool"] = {
        "min_size": min(2, DATABASE_POOL_MAX_SIZE),
        "max_size": DATABASE_POOL_MAX_SIZE,
        # How long a request waits for a connection before it is refused (503): while the
        # database is unreachable, every request waits this long.
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 3, minimum=1),
    }
IS_POSTGRES = _db["ENGINE"] == "django.db.backends.postgresql"
if IS_POSTGRES and os.environ.get("DATABASE_TEST_NAME"):
    # Lets several test runs share one PostgreSQL server without clashing.
    _db["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME", "")}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Time ---------------------------------------------------------------------
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
# Reporting day boundaries ("today", daily buckets) are drawn in this zone.
STATS_TIME_ZONE = env_time_zone("STATS_TIME_ZONE", TIME_ZONE)
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = "en-us"

# --- Static files -------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (tests, a fresh checkout) WhiteNoise serves from the app folders.
WHITENOISE_USE_FINDERS = True

# --- Product settings ---------------------------------------------------------
# Service keys accepted besides those created in the admin (comma-separated, raw).
STATSITE_API_KEYS = env_list("STATSITE_API_KEYS", [])
# Quota units per currency unit, as the gateway dialect counts quota.
QUOTA_PER_UNIT = env_int("QUOTA_PER_UNIT", 500_000, minimum=1)
# Longest window, in days, that the gateway usage data (/api/data/) answers at once.
DATA_MAX_RANGE_DAYS = env_int("DATA_MAX_RANGE_DAYS", 31, minimum=1)
# Ingest: records per request and the request body cap.
INGEST_MAX_RECORDS = env_int("INGEST_MAX_RECORDS", 1000, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)
# Retention of raw rows in days, applied by `manage.py purge --retention` (from cron).
# Unset keeps them forever. Rollups are never purged, so totals outlive the rows.
LOG_RETENTION_DAYS = env_int("LOG_RETENTION_DAYS", None, minimum=1)
TOOL_CALL_RETENTION_DAYS = env_int("TOOL_CALL_RETENTION_DAYS", None, minimum=1)
MESSAGE_RETENTION_DAYS = env_int("MESSAGE_RETENTION_DAYS", None, minimum=1)
# The live event stream (/api/system/events): seconds between `status`/`metric`
# events, and between keep-alive comments (which stop proxies closing a quiet stream).
SSE_STATUS_INTERVAL = env_int("SSE_STATUS_INTERVAL", 5, minimum=1)
SSE_KEEPALIVE_SECONDS = env_int("SSE_KEEPALIVE_SECONDS", 15, minimum=1)
# /api/system/status `bot.connected`: an ingest request succeeded within this many seconds.
BOT_CONNECTED_WINDOW_SECONDS = env_int("BOT_CONNECTED_WINDOW_SECONDS", 300, minimum=1)

# --- Security -------------------------------------------------------------------
# Behind a TLS-terminating proxy set STATSITE_HTTPS=true: secure cookies, HSTS,
# redirect to https, and trust of the proxy's X-Forwarded-Proto.
STATSITE_HTTPS = env_bool("STATSITE_HTTPS", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if STATSITE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# CORS: only the public token lookup is cross-origin (the gateway log document says so).
CORS_URLS_REGEX = r"^/api/log/token/?$"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = False

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "statsite.authentication.ApiKeyAuthentication",
        "statsite.authentication.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["statsite.permissions.IsAdminOrService"],
    "DEFAULT_RENDERER_CLASSES": [
        "statsite.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["statsite.parsers.SafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "statsite.dialects.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_THROTTLE_RATES": {
        # Per client address: the public relay-key lookup of /api/log/token.
        "log_token": env_rate("LOG_TOKEN_THROTTLE_RATE", "60/min"),
        # Per account: /api/log/search and /api/log/self/search scan content.
        "log_search": env_rate("LOG_SEARCH_THROTTLE_RATE", "30/min"),
    },
    # Reverse proxies in front of the app whose X-Forwarded-For is trusted to name the
    # client (throttling by address). 0: the connecting address, so a client cannot
    # dodge a throttle by sending its own X-Forwarded-For.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "statsite API",
    "DESCRIPTION": "LLM calls, tool calls, chat messages and logs: ingest, statistics and log queries.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Documents the plain Django views (the event stream, /healthz) and the ingest client headers.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "statsite.system.schema.add_plain_views",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A client's mistake (a 4xx, a bad Host header) is logged in one line, without the traceback.
    "filters": {"client_errors_brief": {"()": "statsite.log_filters.ClientErrorsBrief"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["client_errors_brief"]}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
