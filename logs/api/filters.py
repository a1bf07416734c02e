"""Query parameters of the log list endpoints, as django-filter FilterSets.

A bad value answers 400 naming the parameter (DjangoFilterBackend raises, the
dialect's exception handler renders). Blank values (`?channel=&group=`, as
gateway front-ends send them) are ignored, like absent ones.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from logs.api.serializers import LOG_TYPES, MAX_UNIX_SECONDS
from logs.models import Log
from logs.selectors import LogCriteria
from statsite.ingest import INT32_MAX
from statsite.timeparse import parse_instant
from usage.models import ToolCall

KEYWORD_MAX_LENGTH = 200
LEVEL_CHOICES = [*Log.Level.choices, ("warning", "warn")]
STATUS_CHOICES = [("success", "success"), ("error", "error")]


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def unix_window(start: int | None, end: int | None) -> tuple[datetime | None, datetime | None]:
    """The half-open `[start, end + 1 s)` that the gateway's inclusive unix-second
    bounds mean: every row stamped within the end second is in. 0 (what gateway
    clients send for "no bound") and None leave a side open."""
    return (from_unix(start) if start else None, from_unix(end) + timedelta(seconds=1) if end else None)


def check_window(start: int | None, end: int | None) -> None:
    if start and end and start > end:
        raise ValidationError({"end_timestamp": "must not be before start_timestamp."})


# --- filter fields -------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(django_filters.Filter):
    """A whole number (django-filter's NumberFilter would take 2.5)."""

    field_class = forms.IntegerField


class LowercaseChoiceField(forms.ChoiceField):
    def to_python(self, value):
        return super().to_python(value).strip().lower()


class LowercaseChoiceFilter(django_filters.Filter):
    field_class = LowercaseChoiceField


class InstantField(forms.Field):
    """ISO 8601 (a naive time is in TIME_ZONE) or unix time. Unix values from 1e11
    up are taken as milliseconds, as JavaScript's `Date.now()` gives them: in
    seconds they would be past the year 5000."""

    default_error_messages = {"invalid": "Expected an ISO 8601 date-time or a unix timestamp."}
    _NUMBER = re.compile(r"^\d{1,16}(\.\d{1,9})?$")

    def to_python(self, value) -> datetime | None:
        text = (value or "").strip()
        if not text:
            return None
        if self._NUMBER.match(text):
            number = float(text)
            if number >= 1e11:
                number /= 1000
            if number > MAX_UNIX_SECONDS:
                raise ValidationError("Must not be past the year 2999.", code="too_late")
            return datetime.fromtimestamp(number, tz=UTC)
        try:
            # In UTC now, so no database adapter has to convert (and overflow) it later.
            return parse_instant(text).astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from exc


@extend_schema_field(OpenApiTypes.STR)
class InstantFilter(django_filters.Filter):
    field_class = InstantField


# --- the gateway log endpoints ---------------------------------------------------------


class GatewayLogFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        try:
            check_window(data.get("start_timestamp"), data.get("end_timestamp"))
        except ValidationError as exc:
            self.add_error(None, exc)
        return data


class OwnLogFilterSet(django_filters.FilterSet):
    """`/api/log/self`: the caller's own rows. The filters make a `LogCriteria`
    (logs.selectors), which narrows the rows and counts them from the rollups."""

    type = django_filters.TypedChoiceFilter(
        choices=LOG_TYPES,
        coerce=int,
        help_text="Log type: 1 top-up, 2 consume, 3 manage, 4 error, 5 system; 0 or absent: all.",
    )
    start_timestamp = IntegerFilter(
        min_value=0,
        max_value=MAX_UNIX_SECONDS,
        help_text="Unix seconds; rows created at or after it. 0 or absent: no lower bound.",
    )
    end_timestamp = IntegerFilter(
        min_value=0,
        max_value=MAX_UNIX_SECONDS,
        help_text="Unix seconds, inclusive (the whole second). 0 or absent: no upper bound.",
    )
    token_name = django_filters.CharFilter(max_length=100, help_text="Relay key name.")
    model_name = django_filters.CharFilter(max_length=128, help_text="Model name.")
    group = django_filters.CharFilter(max_length=64, help_text="Group.")

    class Meta:
        model = Log
        fields: list[str] = []
        form = GatewayLogFilterForm

    def criteria(self, owner=None) -> LogCriteria:
        """The validated filters as criteria (of OWNER's rows only, when given)."""
        return criteria_from(self.form.cleaned_data, owner=owner)

    def filter_queryset(self, queryset):
        return self.criteria().apply(queryset)


def criteria_from(params: dict, *, owner=None) -> LogCriteria:
    """LogCriteria of validated gateway log parameters (blank ones absent): the window
    of the inclusive unix-second bounds; `username` is the account of that name (an
    unknown one matches nothing); OWNER, when given, restricts to that account's rows."""
    start, end = unix_window(params.get("start_timestamp"), params.get("end_timestamp"))
    user_id = owner.pk if owner is not None else None
    nobody = False
    if owner is None and params.get("username"):
        user_id = get_user_model().objects.filter(username=params["username"]).values_list("pk", flat=True).first()
        nobody = user_id is None
    return LogCriteria(
        log_type=params.get("type") or None,
        start=start,
        end=end,
        user_id=user_id,
        token_name=params.get("token_name") or None,
        model_name=params.get("model_name") or None,
        # The gateway's channel 0 means any channel.
        channel_id=params.get("channel") or None,
        group=params.get("group") or None,
        nobody=nobody,
    )


class LogFilterSet(OwnLogFilterSet):
    """`/api/log/`: every account's rows."""

    username = django_filters.CharFilter(max_length=150, help_text="Account name.")
    channel = IntegerFilter(min_value=0, max_value=INT32_MAX, help_text="Channel id; 0 or absent: all.")


class LogSearchFilterSet(django_filters.FilterSet):
    keyword = django_filters.CharFilter(
        method="filter_keyword",
        max_length=KEYWORD_MAX_LENGTH,
        help_text=(
            "A log type (1-5, topup, consume, manage, error, system, 充值, 消费, 管理, 错误, 系统) "
            "or text the content contains, in any case. Blank or absent: every row."
        ),
    )

    class Meta:
        model = Log
        fields: list[str] = []

    def filter_keyword(self, queryset, name: str, value: str):
        return queryset.search(value)


# --- the console log endpoints -----------------------------------------------------------

BEFORE_HELP = (
    "Only rows older than this: ISO 8601 or unix seconds (milliseconds from 1e11 up). "
    "Pass the last row's timestamp to get the next page back in time."
)


class ConsoleFilterSet(django_filters.FilterSet):
    before = InstantFilter(method="filter_before", help_text=BEFORE_HELP)

    def filter_before(self, queryset, name: str, value: datetime):
        return queryset.before(value)


class SystemLogFilterSet(ConsoleFilterSet):
    level = LowercaseChoiceFilter(
        method="filter_level",
        choices=LEVEL_CHOICES,
        help_text="debug, info, warn (or warning) or error, in any case.",
    )

    class Meta:
        model = Log
        fields: list[str] = []

    def filter_level(self, queryset, name: str, value: str):
        return queryset.at_level("warn" if value == "warning" else value)


class ToolLogFilterSet(ConsoleFilterSet):
    toolName = django_filters.CharFilter(method="filter_tool", max_length=200, help_text="Tool name, exact.")
    userId = django_filters.CharFilter(method="filter_user", max_length=150, help_text="User id (account name), exact.")
    status = django_filters.ChoiceFilter(
        method="filter_status", choices=STATUS_CHOICES, help_text="success or error."
    )

    class Meta:
        model = ToolCall
        fields: list[str] = []

    def filter_tool(self, queryset, name: str, value: str):
        return queryset.of_tool(value)

    def filter_user(self, queryset, name: str, value: str):
        return queryset.filter(username=value)

    def filter_status(self, queryset, name: str, value: str):
        return queryset.succeeded(value == "success")


class ErrorLogFilterSet(ConsoleFilterSet):
    class Meta:
        model = Log
        fields: list[str] = []
