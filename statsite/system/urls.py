from django.urls import path

from statsite.system import views

urlpatterns = [
    # The bot console document's system endpoints.
    path("api/system/status", views.SystemStatusView.as_view(), name="system-status"),
    path("api/system/info", views.SystemInfoView.as_view(), name="system-info"),
    path("api/system/health", views.SystemHealthView.as_view(), name="system-health"),
    path("api/system/events", views.system_events, name="system-events"),
    # For load balancers (exempt from the https redirect in settings).
    path("healthz", views.healthz, name="healthz"),
]
