"""Admin pages through Django's test client: who may see them, what they show, and bad input."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from mookti.ids import now_us
from storage.managers import chats, messages, users

STAFF_PAGES = [
    ("admin:mookti_index", None),
    ("admin:mookti_users", None),
    ("admin:mookti_user", "user"),
    ("admin:mookti_user_goals", "user"),
    ("admin:mookti_chat", "chat"),
    ("admin:mookti_document", "document"),
    ("admin:mookti_search", None),
    ("admin:mookti_operations", None),
    ("admin:mookti_keys", None),
    ("admin:mookti_user_delete", "user"),
    ("admin:mookti_user_reindex", "user"),
    ("admin:mookti_user_restore_streak", "user"),
    ("admin:mookti_chat_delete", "chat"),
    ("admin:mookti_retry_dead", None),
]


def url_for(name: str, arg: str | None, learner: dict) -> str:
    ids = {"user": learner["id"], "chat": learner["chat"]["id"], "document": learner["document"]["id"]}
    return reverse(name, args=[ids[arg]] if arg else [])


@pytest.mark.parametrize(("name", "arg"), STAFF_PAGES)
def test_staff_sees_every_page(staff_client: Client, learner, name: str, arg: str | None) -> None:
    response = staff_client.get(url_for(name, arg, learner))
    assert response.status_code == 200, response.content[:2000]
    assert b"Mookti administration" in response.content


@pytest.mark.parametrize(("name", "arg"), STAFF_PAGES)
def test_anonymous_and_non_staff_are_sent_to_the_login_page(
    client: Client, learner_client: Client, learner, name: str, arg: str | None
) -> None:
    url = url_for(name, arg, learner)
    for visitor in (client, learner_client):
        response = visitor.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_actions_refuse_anonymous_and_non_staff_posts(client: Client, learner_client: Client, learner) -> None:
    for visitor in (client, learner_client):
        visitor.post(reverse("admin:mookti_chat_delete", args=[learner["chat"]["id"]]), {"confirm": "yes"})
        visitor.post(reverse("admin:mookti_user_type", args=[learner["id"]]), {"type": "pro", "confirm": "yes"})
        visitor.post(reverse("admin:mookti_user_delete", args=[learner["id"]]), {"confirm": "yes"})
    assert chats.get(learner["chat"]["id"]) is not None
    assert users.get(learner["id"])["type"] == "basic"


def test_actions_need_the_csrf_token(db, django_user_model, learner) -> None:
    staff = django_user_model.objects.create_user("csrf-staff", password="x-pass-123", is_staff=True)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    response = strict.post(reverse("admin:mookti_chat_delete", args=[learner["chat"]["id"]]), {"confirm": "yes"})
    assert response.status_code == 403
    assert chats.get(learner["chat"]["id"]) is not None
    # the confirmation page carries the token, and posting it back works
    page = strict.get(reverse("admin:mookti_chat_delete", args=[learner["chat"]["id"]]))
    token = page.context["csrf_token"]
    response = strict.post(
        reverse("admin:mookti_chat_delete", args=[learner["chat"]["id"]]),
        {"confirm": "yes", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert chats.get(learner["chat"]["id"]) is None


def test_index_lists_the_mookti_pages_next_to_django_auth(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:index"))
    body = response.content.decode()
    assert "Mookti data" in body
    for name in ("mookti_users", "mookti_search", "mookti_operations", "mookti_keys"):
        assert f'href="{reverse(f"admin:{name}")}"' in body
    assert reverse("admin:auth_user_changelist") in body
    assert admin_client.get(reverse("admin:auth_user_changelist")).status_code == 200


# --- users ---------------------------------------------------------------------------------------
def test_user_list_pages_through_a_type_without_loading_everything(staff_client: Client, make_user) -> None:
    created = [users.create(f"pro{i}-{id(staff_client)}@example.com", user_type="pro")["id"] for i in range(30)]
    first = staff_client.get(reverse("admin:mookti_users"), {"type": "pro"})
    assert first.status_code == 200
    assert len(first.context["rows"]) == 25
    assert first.context["total"] >= 30
    assert first.context["next_page"] == 2
    assert all(row["type"] == "pro" for row in first.context["rows"])
    second = staff_client.get(reverse("admin:mookti_users"), {"type": "pro", "page": 2})
    seen = {row["id"] for row in first.context["rows"]} | {row["id"] for row in second.context["rows"]}
    assert set(created) <= seen  # newest first: this test's users are on the first two pages
    assert not {row["id"] for row in first.context["rows"]} & {row["id"] for row in second.context["rows"]}


def test_user_search_by_email_and_by_id(staff_client: Client, learner) -> None:
    by_email = staff_client.get(reverse("admin:mookti_users"), {"q": learner["email"].upper()})
    assert [row["id"] for row in by_email.context["rows"]] == [learner["id"]]
    by_id = staff_client.get(reverse("admin:mookti_users"), {"q": learner["id"]})
    assert [row["email"] for row in by_id.context["rows"]] == [learner["email"]]
    missing = staff_client.get(reverse("admin:mookti_users"), {"q": "nobody@example.com"})
    assert missing.context["rows"] == []
    assert b"No users match" in missing.content


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "not an id!"}, "email address or a user id"),
        ({"type": "platinum"}, "type"),
        ({"page": "two"}, "page"),
        ({"page": "0"}, "page"),
    ],
)
def test_user_list_bad_input_is_a_400_with_a_message(staff_client: Client, params: dict, message: str) -> None:
    response = staff_client.get(reverse("admin:mookti_users"), params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_user_page_shows_profile_chats_documents(staff_client: Client, learner) -> None:
    response = staff_client.get(reverse("admin:mookti_user", args=[learner["id"]]))
    body = response.content.decode()
    assert "Lena Learner" in body
    assert reverse("admin:mookti_chat", args=[learner["chat"]["id"]]) in body
    assert reverse("admin:mookti_document", args=[learner["document"]["id"]]) in body
    assert response.context["counts"] == {"chats": 1, "documents": 1, "tokens": 1}
    assert response.context["messages_24h"] == 1


def test_user_page_pages_through_chats(staff_client: Client, make_user) -> None:
    owner = make_user()
    start = now_us()
    # distinct times: the keyset cursor is a score, and chats created in the same millisecond tie
    made = [chats.create(owner["id"], title=f"chat {i}", created_at=start + i * 1000)["id"] for i in range(23)]
    first = staff_client.get(reverse("admin:mookti_user", args=[owner["id"]]))
    assert len(first.context["chats"]) == 20
    cursor = first.context["next_chats"]
    second = staff_client.get(reverse("admin:mookti_user", args=[owner["id"]]), {"chats_before": cursor})
    ids = [c["id"] for c in first.context["chats"]] + [c["id"] for c in second.context["chats"]]
    assert ids == list(reversed(made))


def test_unknown_and_malformed_ids(staff_client: Client) -> None:
    assert staff_client.get(reverse("admin:mookti_user", args=["no-such-user"])).status_code == 404
    assert staff_client.get(reverse("admin:mookti_chat", args=["no-such-chat"])).status_code == 404
    assert staff_client.get(reverse("admin:mookti_document", args=["no-such-doc"])).status_code == 404
    response = staff_client.get(reverse("admin:mookti_user", args=["bad{id}"]))
    assert response.status_code == 400
    assert "not a valid user id" in response.content.decode()


# --- chats and documents -------------------------------------------------------------------------
def test_chat_page_is_a_readable_transcript(staff_client: Client, learner) -> None:
    response = staff_client.get(reverse("admin:mookti_chat", args=[learner["chat"]["id"]]))
    body = response.content.decode()
    transcript = response.context["transcript"]
    assert [m["role"] for m in transcript] == ["user", "assistant"]
    assert "How do plants make food?" in body
    assert "getWeather" in body and "Pune" in body
    assert [p["kind"] for p in transcript[1]["rendered"]] == ["step", "reasoning", "tool", "text", "file", "file"]
    assert transcript[1]["vote"] == "up"
    assert 'href="https://example.com/leaf.png"' in body
    assert "javascript:alert" not in body
    assert "private" in body


def test_chat_transcript_pages_and_jumps_to_a_message(staff_client: Client, make_user) -> None:
    owner = make_user(user_type="pro")
    chat = chats.create(owner["id"], title="Long chat")
    saved = messages.save(
        owner["id"],
        [{"chatId": chat["id"], "role": "assistant", "parts": [{"type": "text", "text": f"m{i}"}]} for i in range(55)],
    )
    url = reverse("admin:mookti_chat", args=[chat["id"]])
    first = staff_client.get(url)
    assert len(first.context["transcript"]) == 50
    second = staff_client.get(url, {"after": first.context["next_after"]})
    assert [m["content"] for m in second.context["transcript"]] == [f"m{i}" for i in range(50, 55)]
    jump = staff_client.get(url, {"message": saved[52]["id"]})
    assert jump.context["focus"] == saved[52]["id"]
    assert saved[52]["id"] in [m["id"] for m in jump.context["transcript"]]
    assert staff_client.get(url, {"message": "not-in-this-chat"}).status_code == 404
    assert staff_client.get(url, {"after": "bad{cursor}"}).status_code == 400


def test_document_page_shows_versions_diff_and_suggestions(staff_client: Client, learner) -> None:
    response = staff_client.get(reverse("admin:mookti_document", args=[learner["document"]["id"]]))
    versions = response.context["versions"]
    assert [v["title"] for v in versions] == ["Essay v2", "Essay"]
    assert "+They love light." in versions[0]["diff"]
    assert [s["suggestedText"] for s in versions[0]["suggestions"]] == ["need"]
    assert "precise" in response.content.decode()
