"""The shapes of the system endpoints' answers, for the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers


class SystemConsoleErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always false.")
    error = serializers.CharField()


class SystemMemorySerializer(serializers.Serializer):
    used = serializers.IntegerField(help_text="Resident memory of the serving process, bytes.")
    total = serializers.IntegerField(help_text="Memory of the machine, bytes.")
    percentage = serializers.FloatField(help_text="used / total x 100, two decimals.")


class SystemBotSerializer(serializers.Serializer):
    connected = serializers.BooleanField(
        help_text="An ingest request succeeded within BOT_CONNECTED_WINDOW_SECONDS (default 300)."
    )
    platform = serializers.CharField(
        allow_null=True, help_text="X-Client-Platform of the latest ingest client that sent it; null if none did."
    )
    uin = serializers.CharField(
        allow_null=True, help_text="X-Client-Account of the latest ingest client that sent it; null if none did."
    )


class SystemStatusSerializer(serializers.Serializer):
    status = serializers.CharField(help_text='Always "running".')
    version = serializers.CharField()
    uptime = serializers.IntegerField(help_text="Seconds since this server process started.")
    startTime = serializers.DateTimeField(help_text="When this server process started (ISO 8601, UTC).")
    python = serializers.CharField(help_text="Python version (the document's `nodejs`).")
    memory = SystemMemorySerializer()
    bot = SystemBotSerializer()


class SystemFeaturesSerializer(serializers.Serializer):
    postgres = serializers.BooleanField(help_text="The database is PostgreSQL.")
    ssePush = serializers.BooleanField(
        help_text="New errors reach the event stream by LISTEN/NOTIFY (else by polling)."
    )
    retention = serializers.BooleanField(help_text="A *_RETENTION_DAYS setting is set.")
    rollups = serializers.BooleanField(help_text="Statistics come from hourly rollups (always true).")


class SystemInfoSerializer(serializers.Serializer):
    version = serializers.CharField()
    platform = serializers.CharField(help_text="sys.platform, e.g. linux.")
    arch = serializers.CharField(help_text="platform.machine(), e.g. x86_64.")
    python = serializers.CharField()
    features = SystemFeaturesSerializer()
    adapters = serializers.ListField(child=serializers.CharField(), help_text="Names of the channels seen.")
    mcpServers = serializers.IntegerField(
        help_text='Distinct tool-id namespaces: the part before the first "." or ":" of tool ids that have one.'
    )
    totalTools = serializers.IntegerField(help_text="Distinct tool ids ever called (from the tool rollups).")


class SystemDatabaseCheckSerializer(serializers.Serializer):
    status = serializers.CharField(help_text='"ok" or "error".')
    latency = serializers.FloatField(allow_null=True, help_text="Round trip of SELECT 1 in ms; null on error.")
    error = serializers.CharField(required=False, help_text="What went wrong (only on error).")


class SystemBotCheckSerializer(serializers.Serializer):
    status = serializers.CharField(
        help_text='"ok" (an ingest lately), "idle" (none: not a failure) or "error" (the database did not answer).'
    )


class SystemChannelsCheckSerializer(serializers.Serializer):
    status = serializers.CharField(
        help_text='"ok" with at least one enabled channel or no channel at all, else "error".'
    )
    available = serializers.IntegerField(help_text="Enabled channels.")


class SystemChecksSerializer(serializers.Serializer):
    database = SystemDatabaseCheckSerializer()
    bot = SystemBotCheckSerializer()
    channels = SystemChannelsCheckSerializer()


class SystemHealthSerializer(serializers.Serializer):
    healthy = serializers.BooleanField(help_text='False when any check is "error"; the answer is then a 503.')
    checks = SystemChecksSerializer()


def envelope(name: str, data: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """`{"success": true, "data": DATA}`, as a named component."""
    return type(
        name,
        (serializers.Serializer,),
        {"success": serializers.BooleanField(), "data": data(), "__module__": __name__},
    )


SystemStatusResponseSerializer = envelope("SystemStatusResponseSerializer", SystemStatusSerializer)
SystemInfoResponseSerializer = envelope("SystemInfoResponseSerializer", SystemInfoSerializer)
SystemHealthResponseSerializer = envelope("SystemHealthResponseSerializer", SystemHealthSerializer)
