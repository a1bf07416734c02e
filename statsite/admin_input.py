"""Bad input in the admin's own URLs and forms: a clear answer, never a 500.

Django's change lists already turn most bad lookups into their "invalid lookup"
answer (a redirect to `?e=1`), but these values still reached the database or the
calendar and failed there:

- an integer past 64 bits in a list filter on a relation (`?channel=99…9`): the
  SQLite driver cannot bind it (OverflowError);
- a date drill-down at the calendar's edges (`?created_at__year=9999`, or year 1
  in a time zone east of UTC) or past them (`?created_at__year=99…9`): its range
  reaches outside the calendar;
- a NUL character in a list filter's value (`?level=%00`): PostgreSQL refuses
  it in text (DataError);
- a selected row id that is not an id (`_selected_action=abc`, or past 64 bits)
  in an action's POST: the action's query fails (ValueError, OverflowError);
- a choice past 64 bits in a form's many-to-many field (a user's groups): the
  SQLite driver cannot bind it.

`InputGuard` is mixed into every ModelAdmin the site registers (ours and
Django's own, such as users and groups; see `StatsiteAdminSite.register`). The
lookups get the stock "invalid lookup" answer, which now says why (for Django's
own refusals too); a bad selection gets an error message on the list and nothing
is changed; a bad choice is the form's own "not one of the available choices".
"""

from __future__ import annotations

from datetime import MAXYEAR, MINYEAR

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, FieldError, ValidationError
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponse

from statsite.ingest import INT64_MAX

# Lookups whose values are compared with the field's own values.
COMPARING = {"", "exact", "gt", "gte", "lt", "lte", "in", "range"}
# The date drill-down's parts and their bounds. The calendar's first and last
# years are left out: the last one's range ends in year 10000, and the first one
# starts before year 1 in UTC when the time zone is east of it.
DRILL_DOWN = (("year", MINYEAR + 1, MAXYEAR - 1), ("month", 1, 12), ("day", 1, 31))


def _fits_64_bits(number: int) -> bool:
    """Whether both databases' drivers can bind NUMBER as an integer."""
    return -INT64_MAX - 1 <= number <= INT64_MAX


def _beyond_64_bits(text: str) -> bool:
    try:
        number = int(text)
    except ValueError:
        return False  # not a number at all: Django's own validation answers it
    return not _fits_64_bits(number)


def _compared_field(model: type[models.Model], key: str) -> tuple[models.Field | None, str]:
    """The field a change-list lookup KEY compares its value with, and the lookup:
    `channel__exact` on a log is (Channel.id, "exact")."""
    opts = model._meta
    field = None
    parts = key.split(LOOKUP_SEP)
    lookup = ""
    for position, part in enumerate(parts):
        if field is not None:
            if not field.is_relation or field.related_model is None:
                lookup = LOOKUP_SEP.join(parts[position:])  # a lookup or transform of FIELD
                break
            opts = field.related_model._meta
        try:
            field = opts.get_field(part)
        except FieldDoesNotExist:
            if field is None:
                return None, ""
            lookup = LOOKUP_SEP.join(parts[position:])
            break
    if field is not None and field.is_relation:
        try:
            field = field.target_field
        except (AttributeError, FieldError):  # a generic or a many-column relation
            return None, ""
    return field, lookup


def _checks_integers(field: forms.ModelMultipleChoiceField) -> bool:
    meta = field.queryset.model._meta
    key = meta.get_field(field.to_field_name) if field.to_field_name else meta.pk
    return isinstance(key, models.IntegerField)


class BoundedModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Refuses a choice past 64 bits as a choice that does not exist, before the
    query that would look it up."""

    def clean(self, value):
        if isinstance(value, (list, tuple)) and _checks_integers(self):
            for item in value:
                if isinstance(item, (str, int)) and _beyond_64_bits(str(item)):
                    raise ValidationError(
                        self.error_messages["invalid_choice"], code="invalid_choice", params={"value": item}
                    )
        return super().clean(value)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"


def _reason(error: IncorrectLookupParameters) -> str:
    cause = error.args[0] if error.args else error
    if isinstance(cause, ValidationError):
        return " ".join(cause.messages)
    text = str(cause).strip()
    return text if text.endswith(".") else f"{text}."


class GuardedChangeList(ChangeList):
    def get_filters(self, request: HttpRequest):
        params = self.get_filters_params()
        self._check_drill_down(params)
        self._check_values(params)
        return super().get_filters(request)

    def _check_drill_down(self, params: dict[str, list[str]]) -> None:
        if not self.date_hierarchy:
            return
        for part, low, high in DRILL_DOWN:
            key = f"{self.date_hierarchy}{LOOKUP_SEP}{part}"
            for text in params.get(key, []):
                try:
                    number = int(text)
                except ValueError:
                    number = None
                if number is None or not low <= number <= high:
                    raise IncorrectLookupParameters(
                        f"{key} must be a whole number from {low} to {high}, not {_shown(text)}."
                    )

    def _check_values(self, params: dict[str, list[str]]) -> None:
        for key, values in params.items():
            if any("\x00" in value for value in values):
                raise IncorrectLookupParameters(f"{key} holds a NUL character, which no stored value has.")
            field, lookup = _compared_field(self.model, key)
            if not isinstance(field, models.IntegerField) or lookup not in COMPARING:
                continue
            for value in values:
                pieces = value.split(",") if lookup in {"in", "range"} else [value]
                if any(_beyond_64_bits(piece) for piece in pieces):
                    raise IncorrectLookupParameters(f"{key}={_shown(value)} is past the largest integer.")


class InputGuard:
    """Mixed into every registered ModelAdmin (before its own class)."""

    def get_changelist(self, request: HttpRequest, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        # None of ours has a change list of its own; one that had would keep it, unguarded.
        return GuardedChangeList if changelist is ChangeList else changelist

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        # Django answers a lookup it cannot use by showing the list unfiltered (a
        # redirect to `?e=1`), without a word; the message says why.
        try:
            return super().get_changelist_instance(request)
        except IncorrectLookupParameters as error:
            self.message_user(request, f"The list is shown unfiltered: {_reason(error)}", messages.ERROR)
            raise

    def formfield_for_manytomany(self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs):
        kwargs.setdefault("form_class", BoundedModelMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def response_action(self, request: HttpRequest, queryset: models.QuerySet) -> HttpResponse | None:
        pk = self.model._meta.pk
        bad = []
        for text in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                value = pk.to_python(text)
            except ValidationError:
                bad.append(text)
                continue
            if isinstance(value, int) and not _fits_64_bits(value):
                bad.append(text)
        if bad:
            shown = ", ".join(_shown(text) for text in bad[:5]) + (", …" if len(bad) > 5 else "")
            self.message_user(
                request,
                f"The selection holds values that are not ids of {self.model._meta.verbose_name_plural}: {shown}. "
                "Nothing was changed.",
                messages.ERROR,
            )
            return None  # the change list redirects back to itself and shows the message
        return super().response_action(request, queryset)
