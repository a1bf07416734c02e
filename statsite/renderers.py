"""JSON rendering that keeps up with large answers.

A month of hourly usage by model is tens of thousands of items; the standard
library's encoder spends longer on it than the database does. `JSONRenderer`
encodes with orjson and reads exactly as DRF's renderer: datetimes, decimals, lazy
strings and every other type orjson does not handle natively go through DRF's own
encoder, line and paragraph separators are escaped as DRF escapes them, and
whatever orjson refuses (an integer past 64 bits, a pretty-printed answer for the
browsable API) is rendered by DRF's renderer itself. (One difference: DRF refuses a
NaN that orjson writes as null; no answer holds one, as ingest refuses them.)

Once the body is written, the renderer also lets go of the answer. DRF links each
response to itself (`renderer_context["response"]`) and to its view both ways
(`view.response`, `renderer_context["view"]`), and the view to its request and back:
without more, every answer (a month of hourly usage by model: 35,000 items, 12 MB
with its body) outlives its request until the garbage collector's next full pass,
and those passes grow long. The two links to the response are cut, so that it is
freed when the server drops it; the view and its request, and a serializer's link
to the summary it wrote, are small and left to the collector.
"""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils import encoders

_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
# Keys that are not strings (DRF writes them as json does: 1 -> "1") take orjson's
# slower path for every dict (1.0 against 0.6 ms for a month of one account's hourly
# usage), so it is only taken for an answer that holds one.
_NON_STR_KEYS_OPTIONS = _ORJSON_OPTIONS | orjson.OPT_NON_STR_KEYS
_DRF_DEFAULT = encoders.JSONEncoder().default


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None) -> bytes:
        body = self._body(data, accepted_media_type, renderer_context)
        if renderer_context:
            self._release(renderer_context)
        return body

    def _release(self, renderer_context: dict) -> None:
        """Cut the links that keep the rendered response alive, when this renderer
        wrote its body (the browsable API renders through this one, then reads them)."""
        response = renderer_context.get("response")
        if response is None or getattr(response, "accepted_renderer", None) is not self:
            return
        del renderer_context["response"]
        view = renderer_context.get("view")
        if getattr(view, "response", None) is response:
            view.response = None

    def _body(self, data: Any, accepted_media_type: str | None, renderer_context: dict | None) -> bytes:
        pretty = self.get_indent(accepted_media_type, renderer_context or {}) is not None
        if data is None or pretty or self.ensure_ascii or not self.compact:
            return super().render(data, accepted_media_type, renderer_context)
        encoded = _encoded(data)
        if encoded is None:
            return super().render(data, accepted_media_type, renderer_context)
        # As DRF does: JSON that is also a strict subset of JavaScript. Both separators
        # begin with this byte, which memchr finds (a longer needle is searched byte by
        # byte: 0.7 ms a megabyte); most answers hold none, and are not copied.
        if b"\xe2" not in encoded:
            return encoded
        return encoded.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")


def _encoded(data: Any) -> bytes | None:
    """DATA as orjson writes it, or None where only DRF's renderer can."""
    for options in (_ORJSON_OPTIONS, _NON_STR_KEYS_OPTIONS):
        try:
            return orjson.dumps(data, default=_DRF_DEFAULT, option=options)
        except (orjson.JSONEncodeError, TypeError):
            continue
    return None
