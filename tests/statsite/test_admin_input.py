"""Bad input in the admin's URLs and forms gets the admin's own answers, never a
500, and changes nothing: the change list's "invalid lookup" redirect (`?e=1`), an
error message on the list, or a form error. On both databases; each case here was
a 500 on at least one of them."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.sites import site
from django.contrib.auth.models import Group, Permission, User
from django.contrib.messages import get_messages

from logs.models import Log
from messaging.models import Chat, Message
from statsite.admin_input import InputGuard
from statsite.admin_site import StatsiteAdminSite
from statsite.models import AccessToken
# The admin tests' fixtures: fast password hashing (autouse) and three rows of every kind.
from tests.statsite.test_admin import fast_passwords, rows, url  # noqa: F401
from usage.models import Channel, RelayKey, ToolCall

PAST_64_BITS = str(2**64)
FACTS = [Log, ToolCall, Message]


def invalid_lookup(response, model) -> bool:
    return response.status_code == 302 and response.url == url(model, "changelist") + "?e=1"


def test_every_registered_admin_is_guarded():
    assert site._registry
    for model, model_admin in site._registry.items():
        assert isinstance(model_admin, InputGuard), model


def test_the_guard_keeps_the_admin_class_and_is_mixed_in_once():
    class ChannelAdmin(admin.ModelAdmin):
        list_display = ("id", "name")

    class GuardedChatAdmin(InputGuard, admin.ModelAdmin):
        pass

    other = StatsiteAdminSite(name="other")
    other.register(Channel, ChannelAdmin)
    other.register(Chat, GuardedChatAdmin)
    other.register(Message)
    channel_admin = other._registry[Channel]
    assert isinstance(channel_admin, ChannelAdmin) and isinstance(channel_admin, InputGuard)
    assert type(channel_admin).__name__ == "ChannelAdmin" and channel_admin.list_display == ("id", "name")
    assert type(other._registry[Chat]) is GuardedChatAdmin
    assert type(other._registry[Message]).__mro__[1:3] == (InputGuard, admin.ModelAdmin)


class TestListLookups:
    @pytest.mark.parametrize("value", [PAST_64_BITS, f"-{PAST_64_BITS}", "9" * 400])
    @pytest.mark.parametrize("key", ["channel", "channel__exact", "channel__gte", "channel__id__exact"])
    def test_an_integer_past_64_bits_is_an_invalid_lookup(self, admin_client, rows, key, value):
        assert invalid_lookup(admin_client.get(url(Log, "changelist"), {key: value}), Log)

    def test_one_such_integer_in_a_list_is_enough(self, admin_client, rows):
        response = admin_client.get(url(Log, "changelist"), {"channel__in": f"7,{PAST_64_BITS}"})
        assert invalid_lookup(response, Log)

    def test_a_many_to_many_filter_too(self, admin_client, rows):
        response = admin_client.get(url(User, "changelist"), {"groups__id__exact": PAST_64_BITS})
        assert invalid_lookup(response, User)

    def test_an_integer_within_64_bits_still_filters(self, admin_client, rows):
        response = admin_client.get(url(Log, "changelist"), {"channel__id__exact": "7"})
        assert response.status_code == 200
        assert response.context["cl"].result_count == 3
        response = admin_client.get(url(Log, "changelist"), {"channel__id__exact": str(2**63 - 1)})
        assert response.status_code == 200
        assert response.context["cl"].result_count == 0

    @pytest.mark.parametrize("key", ["level", "model_name", "group", "channel__id__exact"])
    def test_a_nul_character_is_an_invalid_lookup(self, admin_client, rows, key):
        assert invalid_lookup(admin_client.get(url(Log, "changelist"), {key: "in\x00fo"}), Log)

    def test_a_nul_character_through_a_relation(self, admin_client, rows):
        assert invalid_lookup(admin_client.get(url(Message, "changelist"), {"chat__kind__exact": "\x00"}), Message)

    @pytest.mark.parametrize(
        ("params", "reason"),
        [
            ({"channel": PAST_64_BITS}, f"channel='{PAST_64_BITS}' is past the largest integer."),
            ({"channel__in": "7," + "9" * 60}, "channel__in='7," + "9" * 38 + "'… is past the largest integer."),
            ({"level": "\x00"}, "level holds a NUL character, which no stored value has."),
            ({"created_at__year": "9999"}, "created_at__year must be a whole number from 2 to 9998, not '9999'."),
            # Django's own refusal, which said nothing before.
            ({"channel": "abc"}, "Field 'id' expected a number but got 'abc'."),
        ],
    )
    def test_the_list_says_why_it_is_unfiltered(self, admin_client, rows, params, reason):
        response = admin_client.get(url(Log, "changelist"), params, follow=True)
        assert response.redirect_chain == [(url(Log, "changelist") + "?e=1", 302)]
        assert response.status_code == 200 and response.context["cl"].result_count == 3
        shown = [str(message) for message in response.context["messages"]]
        assert len(shown) == 1 and shown[0].startswith("The list is shown unfiltered: ") and reason in shown[0]

    def test_the_error_flag_page_is_the_stock_one(self, admin_client, rows):
        response = admin_client.get(url(Log, "changelist"), {"channel": PAST_64_BITS, "e": "1"})
        assert response.status_code == 200
        assert "Something’s wrong with your database installation" in response.content.decode()


class TestDateDrillDown:
    @pytest.mark.parametrize("model", FACTS)
    @pytest.mark.parametrize(
        "params",
        [
            {"created_at__year": "9999"},
            {"created_at__year": "9999", "created_at__month": "12"},
            {"created_at__year": "9999", "created_at__month": "12", "created_at__day": "31"},
            {"created_at__year": PAST_64_BITS},
            {"created_at__year": "2025", "created_at__month": PAST_64_BITS},
            {"created_at__year": "2025", "created_at__month": "3", "created_at__day": "9" * 400},
            {"created_at__year": "0"},
            {"created_at__year": "twenty"},
        ],
    )
    def test_a_range_outside_the_calendar_is_an_invalid_lookup(self, admin_client, rows, model, params):
        assert invalid_lookup(admin_client.get(url(model, "changelist"), params), model)

    @pytest.mark.parametrize("time_zone", ["Asia/Shanghai", "America/Los_Angeles"])
    def test_the_first_year_is_outside_in_every_time_zone(self, admin_client, rows, settings, time_zone):
        settings.TIME_ZONE = time_zone
        assert invalid_lookup(admin_client.get(url(Log, "changelist"), {"created_at__year": "1"}), Log)

    @pytest.mark.parametrize("time_zone", ["Asia/Shanghai", "Pacific/Kiritimati", "Etc/GMT+12"])
    @pytest.mark.parametrize(
        "params",
        [
            {"created_at__year": "2"},
            {"created_at__year": "9998"},
            {"created_at__year": "9998", "created_at__month": "12", "created_at__day": "31"},
        ],
    )
    def test_the_years_inside_answer_in_every_time_zone(self, admin_client, rows, settings, time_zone, params):
        settings.TIME_ZONE = time_zone
        response = admin_client.get(url(Log, "changelist"), params)
        assert response.status_code == 200
        assert response.context["cl"].result_count == 0

    def test_a_day_with_rows_still_drills_down(self, admin_client, rows):
        params = {"created_at__year": "2025", "created_at__month": "3", "created_at__day": "1"}
        response = admin_client.get(url(Log, "changelist"), params)
        assert response.status_code == 200
        assert response.context["cl"].result_count == 3


class TestActionSelections:
    @pytest.fixture
    def token(self, rows):
        return AccessToken.objects.get(user=rows)

    @pytest.mark.parametrize("bad", ["abc", PAST_64_BITS, "", "1.5"])
    def test_a_selection_that_is_not_ids_changes_nothing(self, admin_client, token, bad):
        changelist = url(AccessToken, "changelist")
        response = admin_client.post(
            changelist, {"action": "revoke", "_selected_action": [str(token.pk), bad], "index": "0"}
        )
        assert response.status_code == 302 and response.url == changelist
        shown = [str(message) for message in get_messages(response.wsgi_request)]
        assert len(shown) == 1 and "not ids of personal access tokens" in shown[0] and "Nothing was changed" in shown[0]
        token.refresh_from_db()
        assert token.revoked_at is None

    def test_delete_selected_too(self, admin_client, rows):
        changelist = url(RelayKey, "changelist")
        keys = RelayKey.objects.count()
        response = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": ["x", "-1"]})
        assert response.status_code == 302 and response.url == changelist
        response = admin_client.post(
            changelist, {"action": "delete_selected", "_selected_action": ["x"], "post": "yes"}
        )
        assert response.status_code == 302
        assert RelayKey.objects.count() == keys

    def test_a_long_list_of_bad_values_is_shortened(self, admin_client, token):
        changelist = url(AccessToken, "changelist")
        bad = [f"bad-{n}" for n in range(8)]
        response = admin_client.post(changelist, {"action": "revoke", "_selected_action": bad, "index": "0"})
        shown = str(next(iter(get_messages(response.wsgi_request))))
        assert "'bad-4'" in shown and "'bad-5'" not in shown and "…" in shown

    def test_ids_still_apply_the_action(self, admin_client, token):
        changelist = url(AccessToken, "changelist")
        response = admin_client.post(
            changelist, {"action": "revoke", "_selected_action": [str(token.pk)], "index": "0"}
        )
        assert response.status_code == 302
        token.refresh_from_db()
        assert token.revoked_at is not None


class TestManyToManyChoices:
    def test_a_choice_past_64_bits_is_not_a_choice(self, admin_client, db):
        response = admin_client.post(url(Group, "add"), {"name": "ops", "permissions": [PAST_64_BITS]})
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert "permissions" in errors and "not one of the available choices" in errors["permissions"][0]
        assert not Group.objects.filter(name="ops").exists()

    def test_on_a_users_groups(self, admin_client, user_a):
        form = {
            "username": user_a.username, "groups": [PAST_64_BITS], "user_permissions": [str(2**63 - 1)],
            "date_joined_0": "2025-03-01", "date_joined_1": "12:00:00", "is_active": "on",
        }
        response = admin_client.post(url(User, "change", user_a.pk), form)
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert "groups" in errors and "user_permissions" in errors
        assert not user_a.groups.exists()

    def test_real_choices_still_save(self, admin_client, db):
        permission = Permission.objects.first()
        response = admin_client.post(url(Group, "add"), {"name": "ops", "permissions": [str(permission.pk)]})
        assert response.status_code == 302
        assert list(Group.objects.get(name="ops").permissions.all()) == [permission]
