from django.urls import path

from messaging.api import views

urlpatterns = [
    path("api/ingest/messages", views.MessageIngestView.as_view(), name="ingest-messages"),
    # The bot stats document's message API, paths as it writes them.
    path("messages/recent", views.MessagesRecentView.as_view(), name="messages-recent"),
    path("messages/stats_by_chat", views.MessagesByChatView.as_view(), name="messages-stats-by-chat"),
    # The bot console document's usage statistics.
    path("api/stats", views.ConsoleStatsView.as_view(), name="console-stats"),
    path("api/stats/users", views.ConsoleUserRankingView.as_view(), name="console-stats-users"),
    path("api/stats/groups", views.ConsoleGroupRankingView.as_view(), name="console-stats-groups"),
]
