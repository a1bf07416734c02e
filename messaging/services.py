"""Write paths of messaging: chats, participants and messages from ingest."""

from __future__ import annotations

from django.db import IntegrityError

from messaging.models import Chat, Message, Participant
from statsite.ingest import FactRows, each_part, first_of_each, in_key_order, instances_among
from usage import rollups
from usage.services import after_commit

MESSAGE_ROWS = FactRows(Message)


def _resolve(model, key_field: str, wanted: dict[str, dict]) -> dict[str, object]:
    """Rows of MODEL by KEY_FIELD, creating missing ones from WANTED's attributes;
    attributes that changed are updated after the commit (newest ingest wins)."""
    keys = sorted(wanted)
    found: dict[str, object] = {getattr(o, key_field): o for o in instances_among(model, key_field, keys)}
    missing = [k for k in keys if k not in found]
    if missing:
        # In key order, conflicts ignored: a row that a concurrent batch creates
        # meanwhile is waited for and then found, rather than failing this batch.
        model.objects.bulk_create([model(**{key_field: k, **wanted[k]}) for k in missing], ignore_conflicts=True)
        found.update({getattr(o, key_field): o for o in instances_among(model, key_field, missing)})
        if len(found) < len(keys):
            # Not expected (an insert that meets a concurrent one waits for its outcome),
            # but a missing row must rerun the batch, not fail it with a KeyError.
            raise IntegrityError(f"a {model.__name__} being created concurrently is missing")
    for key, attrs in wanted.items():
        obj = found[key]
        changed = {name: value for name, value in attrs.items() if value and getattr(obj, name) != value}
        if changed:
            after_commit(
                f"{model.__name__} {key}",
                lambda k=key, c=changed: model.objects.filter(**{key_field: k}).update(**c),
            )
    return found


def record_messages(records: list[dict]) -> int:
    """Store messages not stored before (by chat + message_id). Returns how many were created.
    Runs inside the caller's transaction."""
    chats_wanted: dict[str, dict] = {}
    people_wanted: dict[str, dict] = {}
    for r in records:
        attrs = chats_wanted.setdefault(r["chat_id"], {})
        # The last record of the batch that names the chat wins.
        if r.get("chat_name"):
            attrs["name"] = r["chat_name"]
        if r.get("chat_type"):
            attrs["kind"] = r["chat_type"]
        if r.get("user_id"):
            person = people_wanted.setdefault(r["user_id"], {})
            if r.get("nickname"):
                person["nickname"] = r["nickname"]
    chats = _resolve(Chat, "chat_id", chats_wanted)

    keyed = {(chats[r["chat_id"]].pk, r["message_id"]) for r in records if r.get("message_id")}
    stored: set[tuple[int, str]] = set()
    if keyed:
        # A superset by chat and by id, narrowed to the exact pairs here.
        in_chats = Message.objects.filter(chat_id__in={c for c, _ in keyed})
        for where in each_part("message_id", sorted({m for _, m in keyed})):
            stored.update(in_chats.filter(where).values_list("chat_id", "message_id"))
        stored &= keyed
    fresh = first_of_each(
        records,
        lambda r: (chats[r["chat_id"]].pk, r["message_id"]) if r.get("message_id") else None,
        stored,
    )
    if not fresh:
        return 0
    people = _resolve(Participant, "user_id", people_wanted)
    rows = []
    for r in fresh:
        sender = people.get(r.get("user_id") or "")
        rows.append(
            MESSAGE_ROWS.row(
                message_id=r.get("message_id") or None,
                chat_id=chats[r["chat_id"]].pk,
                sender_id=sender.pk if sender else None,
                sent_by_bot=r.get("sent_by_bot", False),
                created_at=r["created_at"],
                text_length=len(r.get("text", "")),
                text=r.get("text", ""),
            )
        )
    rows = MESSAGE_ROWS.insert(
        in_key_order(rows, lambda row: (row.chat_id, row.message_id) if row.message_id else None)
    )
    # In the same transaction, so a committed message is counted exactly once.
    rollups.apply("messages", rows)
    return len(rows)
