"""Staff actions: a confirmation page on GET, the change on a confirmed POST, an audit entry with the staff member."""

from __future__ import annotations

from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from gamification import keys as gamification_keys
from gamification.managers import activity
from mookti import keys as mookti_keys
from mookti.redis import get_redis
from storage import keys
from storage.managers import chats, documents, users
from storage.managers.paging import PageRequest
from storage.staff import keys as staff_keys


def audit_entries() -> list[dict[str, str]]:
    return [fields for _, fields in get_redis().xrevrange(staff_keys.admin_audit(), count=50)]


def outbox_ops() -> list[dict[str, str]]:
    return [fields for _, fields in get_redis().xrange(mookti_keys.outbox())]


def test_change_user_type_confirms_then_changes_and_audits(staff_client: Client, learner) -> None:
    url = reverse("admin:mookti_user_type", args=[learner["id"]])
    page = staff_client.get(url, {"type": "pro"})
    assert page.status_code == 200
    assert "from basic to pro" in page.content.decode()
    assert users.get(learner["id"])["type"] == "basic"  # showing the confirmation changes nothing

    response = staff_client.post(url, {"type": "pro", "confirm": "yes"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:mookti_user", args=[learner["id"]])
    assert users.get(learner["id"])["type"] == "pro"
    pro_ids = {u["id"] for u in users.list(user_type="pro", limit=1000)[0]}
    basic_ids = {u["id"] for u in users.list(user_type="basic", limit=1000)[0]}
    assert learner["id"] in pro_ids and learner["id"] not in basic_ids
    entry = audit_entries()[0]
    assert (entry["staff"], entry["action"], entry["target"]) == (
        "support",
        "user.change_type",
        f"user:{learner['id']}",
    )
    assert "basic -> pro" in entry["detail"]
    assert LogEntry.objects.filter(user__username="support", object_id=f"user:{learner['id']}").exists()


def test_change_user_type_rejects_bad_types(staff_client: Client, learner) -> None:
    url = reverse("admin:mookti_user_type", args=[learner["id"]])
    for data in ({"type": "platinum", "confirm": "yes"}, {"confirm": "yes"}, {"type": "basic", "confirm": "yes"}):
        response = staff_client.post(url, data)
        assert response.status_code == 400, data
        assert b"errornote" in response.content
    assert users.get(learner["id"])["type"] == "basic"


def test_a_get_never_acts_even_with_confirm(staff_client: Client, learner) -> None:
    staff_client.get(reverse("admin:mookti_chat_delete", args=[learner["chat"]["id"]]), {"confirm": "yes"})
    staff_client.get(reverse("admin:mookti_user_delete", args=[learner["id"]]), {"confirm": "yes"})
    assert chats.get(learner["chat"]["id"]) is not None
    assert users.get(learner["id"]) is not None


def test_delete_chat(staff_client: Client, learner) -> None:
    chat_id = learner["chat"]["id"]
    url = reverse("admin:mookti_chat_delete", args=[chat_id])
    page = staff_client.get(url)
    assert "Photosynthesis basics" in page.content.decode()
    assert dict(page.context["facts"])["Messages"] == 2

    response = staff_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:mookti_user", args=[learner["id"]])
    assert chats.get(chat_id) is None
    assert not get_redis().exists(keys.chat_message_data(chat_id))
    assert {"op": "delete_chat", "userId": learner["id"], "chatId": chat_id}.items() <= outbox_ops()[-1].items()
    entry = audit_entries()[0]
    assert (entry["staff"], entry["action"], entry["target"]) == ("support", "chat.delete", f"chat:{chat_id}")
    # the chat is gone: its page and the action say so instead of failing
    assert staff_client.get(reverse("admin:mookti_chat", args=[chat_id])).status_code == 404
    assert staff_client.post(url, {"confirm": "yes"}).status_code == 404


def test_delete_user_with_all_their_data(staff_client: Client, learner) -> None:
    user_id = learner["id"]
    activity.record(learner, "item")
    assert get_redis().exists(gamification_keys.streak(user_id))
    url = reverse("admin:mookti_user_delete", args=[user_id])
    page = staff_client.get(url)
    facts = dict(page.context["facts"])
    assert (facts["Chats"], facts["Documents"]) == (1, 1)

    response = staff_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:mookti_users")
    assert users.get(user_id) is None
    assert users.get_by_email(learner["email"]) is None
    assert chats.get(learner["chat"]["id"]) is None
    assert not get_redis().exists(keys.document(learner["document"]["id"]))
    assert documents.list_for_user(user_id, PageRequest(limit=10))[0] == []
    assert not get_redis().exists(gamification_keys.streak(user_id))
    assert any(op["op"] == "delete_user" and op["userId"] == user_id for op in outbox_ops())
    entry = audit_entries()[0]
    assert (entry["action"], entry["target"], entry["detail"]) == ("user.delete", f"user:{user_id}", learner["email"])
    follow = staff_client.get(response["Location"])
    assert "Deleted" in follow.content.decode()


def test_audit_trail_shows_on_the_operations_page(staff_client: Client, learner) -> None:
    staff_client.post(reverse("admin:mookti_user_type", args=[learner["id"]]), {"type": "free", "confirm": "yes"})
    body = staff_client.get(reverse("admin:mookti_operations")).content.decode()
    assert "user.change_type" in body
    assert f"user:{learner['id']}" in body
