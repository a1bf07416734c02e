"""A real statsite server (uvicorn, the production ASGI server) on loopback.

The server gets a database of its own: a SQLite file, or a fresh PostgreSQL
database beside the test database when the suite runs on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    base: str
    env: dict[str, str]
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def request(self, method: str, path: str, body=None, headers: dict[str, str] | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def server_database(server_dir):
    """A DATABASE_URL for the server, and its clean-up."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        yield f"sqlite:///{server_dir / 'e2e.sqlite3'}"
        return
    import psycopg

    name = f"statsite_e2e_{os.getpid()}"
    admin_url = f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """Extra environment for the module's server: a test module overrides this
    fixture to set, say, short intervals."""
    return {}


@contextmanager
def run_server(database_url: str, directory: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """Migrate DATABASE_URL, serve it with uvicorn on a free loopback port, stop it after."""
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))},
        "DATABASE_URL": database_url,
        "STATSITE_VAR_DIR": str(directory / "var"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(extra_env or {}),
    }
    server = Server(base=f"http://127.0.0.1:{port}", env=env, log_path=directory / "server.log")
    server.manage("migrate", "--noinput", "--verbosity", "0")
    log = open(server.log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "statsite.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "off"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    server.process = proc
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {server.log_path.read_text()}") from None
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def live_server_process(server_database, server_dir, server_env):
    """One server for a test module (starting one takes seconds)."""
    with run_server(server_database, server_dir, server_env) as server:
        yield server
