"""Log filters for the server's console log.

Django logs a client's mistake with the traceback of the exception it turned
into a 4xx: a request for a host name not in ALLOWED_HOSTS (django.security,
at ERROR), a staff page refused (django.request, 403). Those tracebacks only
point into Django's own request handling, and a scanner that sends a thousand
bad Host headers would fill the log with fourteen lines for each. `ClientErrorsBrief`
keeps each such record, its level and its one-line message, without the
traceback; a server error (5xx) and every other record keep theirs.
"""

from __future__ import annotations

import logging


class ClientErrorsBrief(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        client_error = isinstance(status, int) and 400 <= status < 500
        if record.exc_info and (client_error or record.name.startswith("django.security.")):
            record.exc_info = None
            record.exc_text = None
        return True
