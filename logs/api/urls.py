from django.urls import path

from logs.api import views

urlpatterns = [
    path("api/ingest/llm-calls", views.LLMCallIngestView.as_view(), name="ingest-llm-calls"),
    path("api/ingest/logs", views.LogIngestView.as_view(), name="ingest-logs"),
]
