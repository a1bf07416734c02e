"""The admin dashboard page (/admin/dashboard/): usage at a glance, for staff.

A GET form (so a view can be bookmarked and shared) picks a range and filters; the
numbers come from `statsite.dashboard` (every one through `usage()`), the charts are
inline SVG from `statsite.charts`, and every chart has a table beside it, so the page
reads without JavaScript and without a network. Bad input is a form error on the page.
"""

from __future__ import annotations

import time as clock
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from messaging.models import Chat, Participant
from statsite import charts
from statsite.charts import Series
from statsite.dashboard import (
    TOP,
    Filters,
    LLMOverTime,
    RawNote,
    Ranked,
    Window,
    llm_over_time,
    messages_per_day,
    stacked,
    top_accounts,
    top_channels,
    top_chats,
    top_tools,
)
from statsite.periods import BEGINNING, last_calendar_days, local_midnight
from usage.models import Channel, ModelPrice
from usage.selectors import stats_zone

RANGES = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "custom": "Custom dates",
}
DEFAULT_RANGE = "7d"
# A custom range spans at most this many days: past that a daily chart stops reading.
MAX_CUSTOM_DAYS = 366


class DashboardForm(forms.Form):
    range = forms.ChoiceField(choices=list(RANGES.items()), required=False, label="Range")
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}), help_text="Both days included."
    )
    model = forms.CharField(required=False, max_length=128, label="Model")
    account = forms.CharField(required=False, max_length=150, label="Account", help_text="Username.")
    channel = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Channel")
    chat = forms.CharField(required=False, max_length=128, label="Chat", help_text="The platform's chat id.")

    def __init__(self, *args, channels: dict[int, str], now: datetime, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = [("", "any channel"), *((pk, f"{name} (#{pk})") for pk, name in channels.items())]
        self.now = now
        self.tz = stats_zone()

    def clean_range(self) -> str:
        return self.cleaned_data.get("range") or DEFAULT_RANGE

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        chosen = data.get("range") or DEFAULT_RANGE
        if chosen == "custom":
            self._custom_window(data)
        else:
            data["window"] = self._named_window(chosen)
        self._resolve_filters(data)
        return data

    def _named_window(self, name: str) -> Window:
        if name == "24h":
            return Window(self.now - timedelta(hours=24), self.now, self.tz)
        start, end = last_calendar_days(int(name.rstrip("d")), tz=self.tz, now=self.now)
        return Window(start, end, self.tz)

    def _custom_window(self, data: dict[str, Any]) -> None:
        first: date | None = data.get("start")
        last: date | None = data.get("end")
        if "start" in self.errors or "end" in self.errors:
            return  # the field already says what is wrong with it
        if first is None or last is None:
            for name, value in (("start", first), ("end", last)):
                if value is None:
                    self.add_error(name, "A custom range needs both dates.")
            return
        if first > last:
            self.add_error("end", "The last day must not be before the first.")
            return
        if (last - first).days + 1 > MAX_CUSTOM_DAYS:
            self.add_error("end", f"A custom range spans at most {MAX_CUSTOM_DAYS} days.")
            return
        start = local_midnight(first, self.tz)
        if start < BEGINNING:
            self.add_error("start", f"Nothing is recorded before {BEGINNING.date().isoformat()}.")
            return
        if start >= self.now:
            self.add_error("start", "The range starts in the future.")
            return
        # The days are inclusive; nothing has happened after now.
        end = min(local_midnight(last + timedelta(days=1), self.tz), self.now)
        data["window"] = Window(start, end, self.tz)

    def _resolve_filters(self, data: dict[str, Any]) -> None:
        """Turn the typed names into the ids each fact kind stores (one small query each)."""
        account = (data.get("account") or "").strip()
        chat = (data.get("chat") or "").strip()
        user_id = sender_pk = chat_pk = None
        if account:
            user_id = get_user_model().objects.filter(username=account).values_list("pk", flat=True).first()
            if user_id is None:
                self.add_error("account", f"No account is named “{account}”.")
                return
            sender_pk = Participant.objects.filter(user_id=account).values_list("pk", flat=True).first()
        if chat:
            chat_pk = Chat.objects.filter(chat_id=chat).values_list("pk", flat=True).first()
        data["filters"] = Filters(
            model=(data.get("model") or "").strip(),
            user_id=user_id,
            channel_id=data.get("channel"),
            chat_id=chat,
            chat_pk=chat_pk,
            sender_pk=sender_pk,
        )


def _n(value: int) -> str:
    return f"{value:,}"


def _money(value: Decimal) -> str:
    return f"{value:,.4f}"


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _ms(value: int | None) -> str:
    return f"{value:,} ms" if value is not None else "–"


def _ranked_rows(items: list[Ranked], *, what: str, by: str = "requests") -> list[dict[str, Any]]:
    """Table rows of ITEMS, each with a bar of its BY measure against the largest one."""
    def measure(item: Ranked) -> int:
        return item.extra[by] if by in item.extra else getattr(item, by)

    peak = max((measure(item) for item in items), default=0) or 1
    return [
        {
            "item": item,
            "requests": _n(item.requests),
            "tokens": _n(item.tokens),
            "cost": _money(item.cost),
            "errors": _n(item.errors),
            "error_rate": _rate(item.errors, item.requests),
            "bar": charts.meter(measure(item) / peak, label=f"{item.name}: {measure(item):,} {what}"),
        }
        for item in items
    ]


def _llm_charts(llm: LLMOverTime) -> dict[str, Any]:
    labels = llm.labels
    requests = [Series(name, values) for name, values in stacked(llm.models, "by_bucket_requests")]
    tokens = [Series(name, values) for name, values in stacked(llm.models, "by_bucket_tokens")]
    error_rate = [(e / r * 100 if r else None) for e, r in zip(llm.errors, llm.requests)]
    shares = [(name, sum(values)) for name, values in stacked(llm.models, "by_bucket_requests")]
    return {
        "requests": charts.stacked_bars(labels, requests, label="Requests over time, stacked by model"),
        "tokens": charts.stacked_bars(labels, tokens, label="Tokens over time, stacked by model"),
        "cost": charts.lines(labels, [Series("cost", [float(c) for c in llm.cost])], label="Cost over time"),
        "share": charts.share_bars([s for s in shares if s[1]], label="Share of requests by model"),
        "errors": charts.lines(labels, [Series("error rate", error_rate, charts.PALETTE[5])], label="Error rate over time", unit="%"),
        "latency": charts.lines(labels, [Series("p95 latency", llm.p95, charts.PALETTE[2])], label="p95 latency over time", unit=" ms"),
    }


def _now() -> datetime:
    """The end of the named ranges (a seam for tests that freeze time)."""
    return timezone.now()


def dashboard_page(request: HttpRequest, *, site: admin.AdminSite) -> HttpResponse:
    began = clock.perf_counter()
    now = _now()
    # The channel table is a small dimension table: it names the filter's choices and the top channels.
    channels = dict(Channel.objects.order_by("id").values_list("id", "name"))
    query = request.GET.copy()
    # Bound with the default range, so the picker shows the range the page draws.
    if not query.get("range"):
        query["range"] = DEFAULT_RANGE
    form = DashboardForm(query, channels=channels, now=now)
    context: dict[str, Any] = {
        **site.each_context(request),
        "title": "Dashboard",
        "form": form,
        "ranges": RANGES,
        "model_names": list(ModelPrice.objects.order_by("model_name").values_list("model_name", flat=True)),
    }
    if form.is_valid():
        context.update(_sections(form.cleaned_data["window"], form.cleaned_data["filters"], channels))
        context["range"] = form.cleaned_data["range"]
    context["elapsed_ms"] = round((clock.perf_counter() - began) * 1000)
    return TemplateResponse(request, "admin/dashboard.html", context)


def _sections(window: Window, filters: Filters, channels: dict[int, str]) -> dict[str, Any]:
    note = RawNote()
    llm = llm_over_time(window, filters, note)
    accounts = top_accounts(window, filters, note)
    channel_rows = top_channels(window, filters, channels, note)
    tools = top_tools(window, filters, note)
    chats = top_chats(window, filters, note)
    messages = messages_per_day(window, filters, note)

    not_applicable = []
    if filters.model or filters.channel_id is not None:
        not_applicable.append("Tool calls and messages carry no model or channel, so those filters do not narrow them.")
    if filters.user_id is not None:
        not_applicable.append(
            "With an account chosen, messages are the ones that person wrote; the bot's replies are not anyone's."
        )
    tool_calls = sum(t.requests for t in tools)
    model_rows = [
        {
            "line": m,
            "requests": _n(m.requests),
            "tokens": _n(m.tokens),
            "cost": _money(m.cost),
            "errors": _n(m.errors),
            "error_rate": _rate(m.errors, m.requests),
            "p95": _ms(m.p95),
            "spark": charts.sparkline(m.by_bucket_requests, label=f"{m.model or '(no model)'}: requests over time"),
        }
        for m in llm.models[:TOP]
    ]
    series_rows = [
        {
            "label": label,
            "requests": _n(llm.requests[i]),
            "tokens": _n(llm.tokens[i]),
            "cost": _money(llm.cost[i]),
            "error_rate": _rate(llm.errors[i], llm.requests[i]),
            "p95": _ms(llm.p95[i]),
        }
        for i, label in enumerate(llm.labels)
    ]
    return {
        "window": window,
        "step": window.step,
        "window_start": window.start.astimezone(window.tz),
        "window_end": window.end.astimezone(window.tz),
        "time_zone": str(window.tz),
        "raw_note": note.sections,
        "not_applicable": not_applicable,
        "cards": [
            ("Requests", _n(llm.total_requests)),
            ("Tokens", _n(llm.total_tokens)),
            ("Cost", _money(llm.total_cost)),
            ("Error rate", _rate(llm.total_errors, llm.total_requests)),
            ("Tool calls", _n(tool_calls)),
            ("Messages", _n(sum(messages.sent) + sum(messages.received))),
        ],
        "totals": {
            "requests": llm.total_requests,
            "tokens": llm.total_tokens,
            "cost": llm.total_cost,
            "errors": llm.total_errors,
            "tool_calls": tool_calls,
            "sent": sum(messages.sent),
            "received": sum(messages.received),
        },
        "charts": {
            **_llm_charts(llm),
            "messages": charts.stacked_bars(
                messages.labels,
                [Series("received", messages.received), Series("sent", messages.sent)],
                label="Messages received and sent per day",
            ),
        },
        "series_rows": series_rows,
        "message_rows": [
            {"label": label, "received": _n(messages.received[i]), "sent": _n(messages.sent[i])}
            for i, label in enumerate(messages.labels)
        ],
        "llm": llm,
        "model_rows": model_rows,
        "account_rows": _ranked_rows(accounts, what="requests"),
        "channel_rows": _ranked_rows(channel_rows, what="requests"),
        "tool_rows": _ranked_rows(tools, what="calls"),
        "chat_rows": [
            {**row, "messages": _n(row["item"].extra["messages"])}
            for row in _ranked_rows(chats, what="messages", by="messages")
        ],
    }

