from django.urls import path

from messaging.api import views

urlpatterns = [
    path("api/ingest/messages", views.MessageIngestView.as_view(), name="ingest-messages"),
]
