"""The admin's "Purge older than…" page (/admin/purge/), in two steps.

1. Choose what (logs, tool calls or messages; optionally one log type) and a cutoff;
   the page counts the rows that would go and asks to type that number, or the
   word "purge", to confirm.
2. The confirmed purge runs through `logs.services.purge`, the same batched delete
   as the API and `manage.py purge`, and the result is reported as a message (with
   the number of batches when there were several). A purge that outlasts
   PURGE_TIME_BUDGET stops after the batch in hand and says how far it got and what
   remains, so no request timeout cuts it short unreported; counting again continues.
3. Every purge that deleted rows leaves an audit row: a manage log (type 3, level
   info) naming the staff member, "purged N logs created before …", with `other` =
   {kind, before, log_type, deleted, batches, complete}.

Staff only (the admin site's `admin_view` wrapper), and a kind is offered only
to users allowed to delete its model. Very large purges are better run with
`manage.py purge`, which is not bound by a request timeout.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from logs.models import Log
from logs.services import purge, purgeable
from messaging.models import Message
from statsite.timeparse import iso_utc
from usage.models import ToolCall

logger = logging.getLogger(__name__)

KINDS: dict[str, tuple[str, type[models.Model]]] = {
    "logs": ("logs", Log),
    "tool-calls": ("tool calls", ToolCall),
    "messages": ("chat messages", Message),
}
CONFIRM_WORD = "purge"
# Rows per batch (each its own short transaction), and how long one request may keep
# deleting before it stops and reports (well under a proxy's usual 60 s timeout).
PURGE_BATCH_SIZE = 5000
PURGE_TIME_BUDGET = 20.0


class _OutOfTime(Exception):
    """Raised from the progress callback, after a batch has committed, to stop a purge."""


def allowed_kinds(user) -> list[tuple[str, str]]:
    """The kinds USER may purge: those whose model USER may delete."""
    return [
        (kind, label.capitalize())
        for kind, (label, model) in KINDS.items()
        if user.has_perm(f"{model._meta.app_label}.delete_{model._meta.model_name}")
    ]


class PurgeForm(forms.Form):
    kind = forms.ChoiceField(label="What")
    before = forms.DateTimeField(
        label="Created before",
    )
    log_type = forms.TypedChoiceField(
        label="Log type",
        choices=[("", "any type"), *Log.Type.choices],
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Logs only.",
    )

    def __init__(self, *args, kinds: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = kinds
        # Read per form, not at import: a date without a time zone is in the current one.
        self.fields["before"].help_text = (
            f"YYYY-MM-DD or YYYY-MM-DD HH:MM, in {settings.TIME_ZONE}. Newer rows are kept."
        )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("log_type") is not None and data.get("kind") != "logs":
            self.add_error("log_type", "A log type only applies to logs.")
        return data


class ConfirmPurgeForm(PurgeForm):
    """Step 2: the choice of step 1 carried in hidden fields, plus the confirmation."""

    expected = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    confirmation = forms.CharField(
        label="Type to confirm",
        max_length=32,
        help_text=f"The number of rows shown above, or the word “{CONFIRM_WORD}”.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("kind", "before", "log_type"):
            self.fields[name].widget = forms.HiddenInput()

    def clean(self) -> dict:
        data = super().clean()
        typed = (data.get("confirmation") or "").strip().lower().replace(",", "").replace(" ", "")
        expected = data.get("expected")
        if "confirmation" in data and typed != CONFIRM_WORD and typed != str(expected):
            self.add_error("confirmation", f"Type {expected} or the word “{CONFIRM_WORD}” to confirm.")
        return data


def _describe(kind: str, cutoff: datetime, log_type: int | None) -> str:
    label = KINDS[kind][0]
    if log_type is not None:
        label = f"{label} of type {log_type} ({Log.Type(log_type).label})"
    return f"{label} created before {iso_utc(cutoff)}"


def purge_page(request: HttpRequest, *, site: admin.AdminSite) -> HttpResponse:
    kinds = allowed_kinds(request.user)
    if not kinds:
        raise PermissionDenied
    context = {**site.each_context(request), "title": "Purge older than…", "confirm_word": CONFIRM_WORD}

    if request.method == "POST" and request.POST.get("stage") == "confirm":
        form = ConfirmPurgeForm(request.POST, kinds=kinds)
        if form.is_valid():
            kind, cutoff, log_type = (form.cleaned_data[k] for k in ("kind", "before", "log_type"))
            what = _describe(kind, cutoff, log_type)
            deleted, batches, complete = _run_purge(kind, cutoff, log_type)
            logger.info("%s purged %d %s from the admin", request.user.get_username(), deleted, what)
            if deleted:
                _audit(request, kind=kind, cutoff=cutoff, log_type=log_type, deleted=deleted, batches=batches,
                       complete=complete, what=what)
            if complete:
                messages.success(request, f"Purged {deleted} {what}.")
                if batches > 1:
                    messages.info(request, f"Deleted in {batches} batches of up to {PURGE_BATCH_SIZE} rows.")
            else:
                remaining = purgeable(kind, before=cutoff, log_type=log_type).count()
                messages.warning(
                    request,
                    f"Stopped after {PURGE_TIME_BUDGET:g} s so the request ends in time: purged {deleted} {what} "
                    f"in {batches} batch{'' if batches == 1 else 'es'}; {remaining} remain. "
                    "Count again to continue, or use manage.py purge.",
                )
            return HttpResponseRedirect(reverse(f"{site.name}:purge"))
        return _confirm_step(request, context, form)

    if request.method == "POST":
        form = PurgeForm(request.POST, kinds=kinds)
        if form.is_valid():
            kind, cutoff, log_type = (form.cleaned_data[k] for k in ("kind", "before", "log_type"))
            count = purgeable(kind, before=cutoff, log_type=log_type).count()
            if count == 0:
                messages.info(request, f"Nothing to purge: there are no {_describe(kind, cutoff, log_type)}.")
            else:
                confirm = ConfirmPurgeForm(
                    initial={
                        "kind": kind,
                        # The exact instant in UTC, so step 2 cannot read it differently.
                        "before": iso_utc(cutoff),
                        "log_type": log_type,
                        "expected": count,
                    },
                    kinds=kinds,
                )
                return _confirm_step(request, context, confirm)
    else:
        form = PurgeForm(initial={"kind": request.GET.get("kind")}, kinds=kinds)

    return TemplateResponse(request, "admin/purge.html", {**context, "stage": "choose", "form": form})


def _run_purge(kind: str, cutoff: datetime, log_type: int | None) -> tuple[int, int, bool]:
    """Purge in batches until done or PURGE_TIME_BUDGET is spent: (deleted, batches, complete).
    Every batch is committed before the budget is checked, so stopping loses nothing."""
    deadline = time.monotonic() + PURGE_TIME_BUDGET
    done = {"deleted": 0, "batches": 0}

    def progress(count: int) -> None:
        done["deleted"] += count
        done["batches"] += 1
        if time.monotonic() > deadline:
            raise _OutOfTime

    try:
        deleted = purge(kind, before=cutoff, log_type=log_type, batch_size=PURGE_BATCH_SIZE, progress=progress)
    except _OutOfTime:
        return done["deleted"], done["batches"], False
    return deleted, done["batches"], True


def _audit(
    request: HttpRequest, *, kind: str, cutoff: datetime, log_type: int | None, deleted: int, batches: int,
    complete: bool, what: str,
) -> None:
    """The manage log that says who purged what: shown in the logs like any other."""
    user = request.user
    Log.objects.create(
        type=Log.Type.MANAGE,
        level=Log.Level.INFO,
        user=user,
        username=user.get_username(),
        content=f"purged {deleted} {what}" + ("" if complete else " (stopped early; some remain)"),
        other={
            "kind": kind,
            "before": iso_utc(cutoff),
            "log_type": log_type,
            "deleted": deleted,
            "batches": batches,
            "complete": complete,
        },
    )


def _confirm_step(request: HttpRequest, context: dict, form: ConfirmPurgeForm) -> HttpResponse:
    """Render step 2 from the values step 1 put in FORM (bound or initial)."""
    values = form.cleaned_data if form.is_bound and hasattr(form, "cleaned_data") else form.initial
    summary = None
    kind, before, expected = values.get("kind"), values.get("before"), values.get("expected")
    if kind in KINDS and before and expected:
        if isinstance(before, str):
            before = form.fields["before"].clean(before)
        summary = {"count": expected, "what": _describe(kind, before, values.get("log_type"))}
    return TemplateResponse(
        request, "admin/purge.html", {**context, "stage": "confirm", "form": form, "summary": summary}
    )
