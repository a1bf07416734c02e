"""JSON rendering that keeps up with large answers.

A month of hourly usage by model is tens of thousands of items; the standard
library's encoder spends longer on it than the database does. `JSONRenderer`
encodes with orjson and reads exactly as DRF's renderer: datetimes, decimals, lazy
strings and every other type orjson does not handle natively go through DRF's own
encoder, line and paragraph separators are escaped as DRF escapes them, and
whatever orjson refuses (an integer past 64 bits, a pretty-printed answer for the
browsable API) is rendered by DRF's renderer itself. (One difference: DRF refuses a
NaN that orjson writes as null; no answer holds one, as ingest refuses them.)
"""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils import encoders

_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_DRF_DEFAULT = encoders.JSONEncoder().default


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None) -> bytes:
        pretty = self.get_indent(accepted_media_type, renderer_context or {}) is not None
        if data is None or pretty or self.ensure_ascii or not self.compact:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            encoded = orjson.dumps(data, default=_DRF_DEFAULT, option=_ORJSON_OPTIONS)
        except (orjson.JSONEncodeError, TypeError):
            return super().render(data, accepted_media_type, renderer_context)
        # As DRF does: JSON that is also a strict subset of JavaScript. Both separators
        # begin with these two bytes; most answers hold neither, and are not copied.
        if b"\xe2\x80" not in encoded:
            return encoded
        return encoded.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
