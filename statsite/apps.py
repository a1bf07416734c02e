from django.apps import AppConfig


class StatsiteConfig(AppConfig):
    name = "statsite"
    verbose_name = "Access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI descriptions of our authentication classes.
        from statsite.api import schema  # noqa: F401
