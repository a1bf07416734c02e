from django.urls import path

from usage.api import views

urlpatterns = [
    path("api/ingest/tool-calls", views.ToolCallIngestView.as_view(), name="ingest-tool-calls"),
    # Gateway usage data (gateway data document), paths as it writes them.
    path("api/data/", views.DataView.as_view(), name="data"),
    path("api/data/self", views.OwnDataView.as_view(), name="data-self"),
    # Bot stats (bot stats document).
    path("llm/stats", views.LLMStatsView.as_view(), name="llm-stats"),
    # Bot console stats (bot console document).
    path("api/stats/models", views.ConsoleModelStatsView.as_view(), name="console-stats-models"),
    path("api/stats/tools", views.ConsoleToolStatsView.as_view(), name="console-stats-tools"),
    path("api/stats/channels", views.ConsoleChannelStatsView.as_view(), name="console-stats-channels"),
    # Tool metering (tool metering document).
    path("agent/stats", views.AgentStatsView.as_view(), name="agent-stats"),
]
