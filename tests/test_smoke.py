def test_it_migrates_and_answers_ingest_without_credentials_with_401(api, db):
    response = api.post("/api/ingest/llm-calls", data={}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
