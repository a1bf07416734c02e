"""ASGI entry point: the production server (uvicorn) serves this, SSE included."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statsite.settings")

application = get_asgi_application()
