"""The production server, as a client meets it: ingest over HTTP, docs, static files."""

from __future__ import annotations

import json


def test_the_running_server_ingests_a_batch_once_and_counts_the_retry_as_duplicates(live_server_process):
    server = live_server_process
    key = server.manage("create_api_key", "e2e").strip().splitlines()[-1]
    batch = [
        {"request_id": f"e2e-{n}", "username": "alice", "model_name": "gpt-4o", "prompt_tokens": n}
        for n in range(50)
    ]
    status, body, _ = server.request("POST", "/api/ingest/llm-calls", batch, {"X-API-Key": key})
    assert status == 201, body
    assert json.loads(body) == {"received": 50, "created": 50, "duplicates": 0}

    status, body, _ = server.request("POST", "/api/ingest/llm-calls", batch, {"Authorization": f"Bearer {key}"})
    assert status == 201
    assert json.loads(body) == {"received": 50, "created": 0, "duplicates": 50}


def test_the_running_server_refuses_bad_input_and_missing_credentials_in_json(live_server_process):
    server = live_server_process
    status, body, headers = server.request("POST", "/api/ingest/logs", {"type": 5})
    assert status == 401
    assert json.loads(body) == {"detail": "Authentication credentials were not provided."}
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")

    key = server.manage("create_api_key", "e2e").strip().splitlines()[-1]
    status, body, _ = server.request("POST", "/api/ingest/logs", {"type": 9}, {"X-API-Key": key})
    assert status == 400
    assert json.loads(body)["errors"][0]["errors"]["type"]


def test_the_running_server_serves_docs_admin_and_static_files(live_server_process):
    server = live_server_process
    assert server.request("GET", "/api/docs/")[0] == 200
    assert server.request("GET", "/admin/login/")[0] == 200
    status, _, headers = server.request("GET", "/static/admin/css/base.css")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/css")
