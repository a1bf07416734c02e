"""The admin: every page loads for staff and is closed to others; facts are
read-only; credentials show their secret once; lists cost no query per row."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.sites import site
from django.contrib.auth import get_user_model
from django.urls import reverse

from logs.models import Log
from messaging.models import Chat, Message, Participant
from statsite import credentials
from statsite.admin_utils import AtLeast, BoundedCountPaginator
from statsite.admin_site import StatsiteAdminSite
from statsite.models import AccessToken, ServiceKey
from usage.models import Channel, ModelPrice, RelayKey, ToolCall

START = datetime(2025, 3, 1, 12, tzinfo=UTC)

FACTS = [Log, ToolCall, Message]
EDITABLE = [RelayKey, Channel, ModelPrice, Chat, Participant, AccessToken, ServiceKey]
ALL_MODELS = FACTS + EDITABLE
_serial = itertools.count()


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def add_rows(n: int, owner) -> None:
    """N rows of every kind, with every relation filled in."""
    channel, _ = Channel.objects.get_or_create(id=7, defaults={"name": "openai-main"})
    key, _ = RelayKey.objects.get_or_create(
        key_hash=credentials.digest("sk-abcdefghijklmnop"),
        defaults={"name": "prod", "prefix": credentials.relay_key_hint("sk-abcdefghijklmnop"), "owner": owner},
    )
    ModelPrice.objects.get_or_create(model_name="gpt-4o", defaults={"input_per_million": Decimal("2.5")})
    chat, _ = Chat.objects.get_or_create(chat_id="g1", defaults={"name": "Friends", "kind": Chat.Kind.GROUP})
    sender, _ = Participant.objects.get_or_create(user_id=owner.username, defaults={"nickname": "Al"})
    for i in range(n):
        at = START + timedelta(minutes=i)
        Log.objects.create(
            created_at=at,
            type=2 if i % 3 else 4,
            user=owner,
            username=owner.username,
            token=key,
            token_name=key.name,
            channel=channel,
            model_name=f"model-{i % 4}",
            group="default",
            prompt_tokens=10,
            completion_tokens=5,
            cost=Decimal("0.001"),
            latency_ms=120,
            success=bool(i % 3),
            content=f"call {i}",
        )
        ToolCall.objects.create(created_at=at, tool_id="weather", tool_name="Weather", user=owner, username=owner.username)
        Message.objects.create(created_at=at, chat=chat, sender=sender, message_id=f"m{next(_serial)}", text="hello", text_length=5)
    token = AccessToken(user=owner, name="laptop")
    token.set_new_secret()
    token.save()
    service_key = ServiceKey(name="bot")
    service_key.set_new_secret()
    service_key.save()


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The admin_user fixture sets a password; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def rows(user_a):
    add_rows(3, user_a)
    return user_a


def test_the_default_admin_site_is_ours():
    assert isinstance(site, StatsiteAdminSite)
    for model in ALL_MODELS:
        assert site.is_registered(model)


@pytest.mark.django_db
class TestPagesLoadForStaff:
    @pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
    def test_the_changelist_loads(self, admin_client, rows, model):
        response = admin_client.get(url(model, "changelist"))
        assert response.status_code == 200

    @pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
    def test_the_change_page_loads(self, admin_client, rows, model):
        obj = model.objects.order_by("pk").first()
        response = admin_client.get(url(model, "change", obj.pk))
        assert response.status_code == 200

    @pytest.mark.parametrize("model", EDITABLE, ids=lambda m: m.__name__)
    def test_the_add_page_of_an_editable_model_loads(self, admin_client, model):
        assert admin_client.get(url(model, "add")).status_code == 200

    def test_the_account_pages_load_without_a_full_count(self, admin_client, rows):
        User = get_user_model()
        assert site.get_model_admin(User).paginator is BoundedCountPaginator
        assert admin_client.get(url(User, "changelist")).status_code == 200
        assert admin_client.get(url(User, "change", rows.pk)).status_code == 200

    def test_the_index_links_to_the_purge_page(self, admin_client):
        response = admin_client.get(reverse("admin:index"))
        assert response.status_code == 200
        assert reverse("admin:purge") in response.content.decode()

    @pytest.mark.parametrize(
        ("model", "query", "expected"),
        [
            (Log, "type__exact=4", 1),
            (Log, "model_name=model-1", 1),
            (Log, "group=default", 3),
            (Log, "success__exact=0", 1),
            (Log, "channel__id__exact=7", 3),
            (Log, "q=call+2", 1),
            (ToolCall, "tool_name=Weather", 3),
            (Message, "chat__kind=group", 3),
            (Message, "chat__kind=private", 0),
        ],
    )
    def test_the_filters_filter(self, admin_client, rows, model, query, expected):
        response = admin_client.get(f"{url(model, 'changelist')}?{query}")
        assert response.status_code == 200
        assert response.context["cl"].result_count == expected

    def test_a_log_links_to_its_user_relay_key_and_channel(self, admin_client, rows):
        log = Log.objects.first()
        html = admin_client.get(url(Log, "changelist")).content.decode()
        assert f'href="{url(get_user_model(), "change", log.user_id)}"' in html
        assert f'href="{url(RelayKey, "change", log.token_id)}"' in html
        assert f'href="{url(Channel, "change", log.channel_id)}"' in html

    def test_a_relay_key_never_shows_its_hash(self, admin_client, rows):
        key = RelayKey.objects.get()
        for page in (url(RelayKey, "changelist"), url(RelayKey, "change", key.pk)):
            html = admin_client.get(page).content.decode()
            assert key.key_hash not in html
            assert key.prefix in html


@pytest.mark.django_db
class TestClosedToOthers:
    @pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
    def test_a_non_staff_user_is_sent_to_the_login(self, client, rows, model):
        client.force_login(rows)
        response = client.get(url(model, "changelist"))
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))

    def test_an_anonymous_visitor_is_sent_to_the_login(self, client, rows):
        response = client.get(url(Log, "change", Log.objects.first().pk))
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))


@pytest.mark.django_db
class TestFactsAreReadOnly:
    @pytest.mark.parametrize("model", FACTS, ids=lambda m: m.__name__)
    def test_a_fact_cannot_be_added_changed_or_deleted_one_by_one(self, admin_client, rf, admin_user, rows, model):
        model_admin = site.get_model_admin(model)
        request = rf.get("/")
        request.user = admin_user
        obj = model.objects.first()
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request, obj)
        assert not model_admin.has_delete_permission(request, obj)

        assert admin_client.get(url(model, "add")).status_code == 403
        assert admin_client.post(url(model, "change", obj.pk), {}).status_code == 403
        assert admin_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
        assert model.objects.filter(pk=obj.pk).exists()

    def test_the_change_page_of_a_fact_is_a_view(self, admin_client, rows):
        log = Log.objects.first()
        response = admin_client.get(url(Log, "change", log.pk))
        assert response.context["has_change_permission"] is False
        assert log.content in response.content.decode()


@pytest.mark.django_db
class TestCredentials:
    def test_adding_a_token_shows_the_secret_once_and_stores_its_hash(self, admin_client, user_a):
        assert "key_hash" not in admin_client.get(url(AccessToken, "add")).context["adminform"].form.fields

        response = admin_client.post(url(AccessToken, "add"), {"name": "ci", "user": user_a.pk}, follow=True)

        assert response.status_code == 200
        raw = re.search(r"sst_[A-Za-z0-9_-]{40,}", response.content.decode()).group(0)
        token = AccessToken.objects.get(name="ci")
        assert token.user == user_a
        assert token.key_hash == credentials.digest(raw)
        assert raw.startswith(token.prefix)
        assert AccessToken.find(raw) == token
        # Never again: not on the next page, not on the token's own page.
        for page in (url(AccessToken, "changelist"), url(AccessToken, "change", token.pk)):
            html = admin_client.get(page).content.decode()
            assert raw not in html
            assert token.key_hash not in html

    def test_adding_a_service_key_shows_the_secret_once_and_stores_its_hash(self, admin_client):
        response = admin_client.post(url(ServiceKey, "add"), {"name": "bot"}, follow=True)

        raw = re.search(r"ssk_[A-Za-z0-9_-]{40,}", response.content.decode()).group(0)
        key = ServiceKey.objects.get(name="bot")
        assert key.key_hash == credentials.digest(raw)
        assert raw not in admin_client.get(url(ServiceKey, "change", key.pk)).content.decode()

    def test_a_key_typed_into_the_form_is_ignored(self, admin_client):
        admin_client.post(url(ServiceKey, "add"), {"name": "bot", "key_hash": "0" * 64, "prefix": "mine"})
        key = ServiceKey.objects.get(name="bot")
        assert key.key_hash != "0" * 64
        assert key.prefix.startswith("ssk_")

    def test_editing_a_token_keeps_its_secret(self, admin_client, rows):
        token = AccessToken.objects.get()
        before = token.key_hash
        response = admin_client.post(url(AccessToken, "change", token.pk), {"name": "renamed"})
        assert response.status_code == 302
        token.refresh_from_db()
        assert (token.name, token.key_hash) == ("renamed", before)

    @pytest.mark.parametrize("model", [AccessToken, ServiceKey], ids=lambda m: m.__name__)
    def test_the_revoke_action_revokes(self, admin_client, rows, model):
        obj = model.objects.get()
        response = admin_client.post(
            url(model, "changelist"), {"action": "revoke", "_selected_action": [obj.pk]}, follow=True
        )
        assert response.status_code == 200
        obj.refresh_from_db()
        assert obj.revoked_at is not None
        assert "Revoked 1" in response.content.decode()

    def test_the_relay_key_actions_disable_and_enable(self, admin_client, rows):
        key = RelayKey.objects.get()
        admin_client.post(url(RelayKey, "changelist"), {"action": "disable", "_selected_action": [key.pk]})
        key.refresh_from_db()
        assert key.status == RelayKey.Status.DISABLED
        admin_client.post(url(RelayKey, "changelist"), {"action": "enable", "_selected_action": [key.pk]})
        key.refresh_from_db()
        assert key.status == RelayKey.Status.ENABLED

    def test_a_model_price_is_editable(self, admin_client, rows):
        price = ModelPrice.objects.get()
        response = admin_client.post(
            url(ModelPrice, "change", price.pk),
            {"model_name": "gpt-4o", "input_per_million": "3", "output_per_million": "12", "currency": "USD"},
        )
        assert response.status_code == 302
        price.refresh_from_db()
        assert (price.input_per_million, price.output_per_million) == (Decimal(3), Decimal(12))


@pytest.mark.django_db
class TestBigTables:
    @pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
    def test_a_changelist_costs_no_query_per_row(
        self, admin_client, user_a, django_assert_max_num_queries, model
    ):
        add_rows(3, user_a)
        with django_assert_max_num_queries(14) as few:
            admin_client.get(url(model, "changelist"))
        add_rows(40, user_a)
        with django_assert_max_num_queries(len(few.captured_queries)):
            admin_client.get(url(model, "changelist"))

    def test_the_paginator_stops_counting_and_says_so(
        self, admin_client, rows, monkeypatch, django_assert_max_num_queries
    ):
        add_rows(9, rows)  # 12 logs in all
        monkeypatch.setattr(BoundedCountPaginator, "count_limit", 4)
        monkeypatch.setattr(site.get_model_admin(Log), "list_per_page", 2)

        with django_assert_max_num_queries(20) as queries:
            response = admin_client.get(url(Log, "changelist"))

        cl = response.context["cl"]
        assert cl.result_count == 4
        assert str(cl.result_count) == "4+"
        assert len(cl.result_list) == 2
        assert "4+ logs" in response.content.decode()
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
        assert counts and all("LIMIT" in sql.upper() for sql in counts)

    def test_the_paginator_counts_exactly_below_the_limit(self, rows):
        paginator = BoundedCountPaginator(Log.objects.order_by("pk"), 2)
        assert paginator.count == 3
        assert type(paginator.count) is int
        assert paginator.num_pages == 2

    def test_the_count_prints_with_a_plus(self):
        assert f"{AtLeast(10000)}" == "10000+"
        assert AtLeast(10000) + 1 == 10001
