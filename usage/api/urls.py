from django.urls import path

from usage.api import views

urlpatterns = [
    path("api/ingest/tool-calls", views.ToolCallIngestView.as_view(), name="ingest-tool-calls"),
]
