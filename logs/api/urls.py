from django.urls import path

from logs.api import views

urlpatterns = [
    path("api/ingest/llm-calls", views.LLMCallIngestView.as_view(), name="ingest-llm-calls"),
    path("api/ingest/logs", views.LogIngestView.as_view(), name="ingest-logs"),
    # The gateway log API (gateway log document), paths as it writes them.
    path("api/log/", views.LogViewSet.as_view({"get": "list", "delete": "purge"}), name="log-list"),
    path("api/log/self", views.OwnLogViewSet.as_view({"get": "list"}), name="log-self"),
    path("api/log/stat", views.LogStatView.as_view(), name="log-stat"),
    path("api/log/self/stat", views.OwnLogStatView.as_view(), name="log-self-stat"),
    path("api/log/search", views.LogSearchViewSet.as_view({"get": "list"}), name="log-search"),
    path("api/log/self/search", views.OwnLogSearchViewSet.as_view({"get": "list"}), name="log-self-search"),
    path("api/log/token", views.LogTokenView.as_view(), name="log-token"),
    # The console log API (bot console document).
    path("api/logs", views.SystemLogListView.as_view(), name="console-logs"),
    path("api/logs/tools", views.ToolLogListView.as_view(), name="console-tool-logs"),
    path("api/logs/errors", views.ErrorLogListView.as_view(), name="console-error-logs"),
]
