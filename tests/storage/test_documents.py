"""Documents: versions (saveDocument), latest, delete after timestamp, suggestions."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter


def new_version(api, doc_id, content, at):
    body = {"title": f"Essay {content}", "kind": "text", "content": content}
    if doc_id:
        body["id"] = doc_id
    r = api.post("/api/storage/document", body)
    assert r.status_code == 201, r.content
    return r.json()


@pytest.fixture
def essay(alice):
    api = alice["api"]
    v1 = new_version(api, None, "v1", 0)
    v2 = new_version(api, v1["id"], "v2", 0)
    v3 = new_version(api, v1["id"], "v3", 0)
    return v1, v2, v3


def test_every_save_is_a_version(alice, essay):
    v1 = essay[0]
    versions = alice["api"].get(f"/api/storage/document/{v1['id']}/versions").json()
    assert [v["content"] for v in versions] == ["v1", "v2", "v3"]
    latest = alice["api"].get(f"/api/storage/document/{v1['id']}").json()
    assert latest["content"] == "v3" and latest["title"] == "Essay v3"
    listing = alice["api"].get("/api/storage/document").json()["documents"]
    assert [d["id"] for d in listing] == [v1["id"]] and listing[0]["title"] == "Essay v3"


def test_delete_after_timestamp_is_strict_and_takes_suggestions(alice, essay):
    v1, v2, v3 = essay
    api = alice["api"]
    r = api.post(
        f"/api/storage/document/{v1['id']}/suggestions",
        {
            "suggestions": [
                {"originalText": "a", "suggestedText": "b", "documentCreatedAt": v2["createdAt"]},
                {"originalText": "c", "suggestedText": "d", "documentCreatedAt": v3["createdAt"]},
            ]
        },
    )
    assert r.status_code == 201, r.content
    r = api.delete(f"/api/storage/document/{v1['id']}?timestamp={v2['createdAt']}")
    assert r.status_code == 200 and r.json()["deletedCount"] == 1
    versions = api.get(f"/api/storage/document/{v1['id']}/versions").json()
    assert [v["content"] for v in versions] == ["v1", "v2"]
    assert api.get(f"/api/storage/document/{v1['id']}").json()["content"] == "v2"
    suggestions = api.get(f"/api/storage/document/{v1['id']}/suggestions").json()
    assert [s["originalText"] for s in suggestions] == ["a"]
    assert suggestions[0]["isResolved"] is False and suggestions[0]["userId"] == alice["id"]


def test_suggestion_defaults_to_latest_version(alice, essay):
    v1, _, v3 = essay
    r = alice["api"].post(
        f"/api/storage/document/{v1['id']}/suggestions", {"suggestions": [{"originalText": "x", "suggestedText": "y"}]}
    )
    assert r.json()[0]["documentCreatedAt"] == v3["createdAt"]


def test_deleting_all_versions_removes_document(alice, essay):
    v1 = essay[0]
    assert alice["api"].delete(f"/api/storage/document/{v1['id']}").json()["deletedCount"] == 3
    assert alice["api"].get(f"/api/storage/document/{v1['id']}").status_code == 404
    assert alice["api"].get("/api/storage/document").json()["documents"] == []


def test_other_users_document_is_404_and_cannot_be_overwritten(alice, bob, essay):
    v1 = essay[0]
    assert bob["api"].get(f"/api/storage/document/{v1['id']}").status_code == 404
    r = bob["api"].post("/api/storage/document", {"id": v1["id"], "title": "mine", "content": "hijack"})
    assert r.status_code == 404
    assert alice["api"].get(f"/api/storage/document/{v1['id']}").json()["content"] == "v3"


def test_upload_pdf_and_text(alice):
    pdf = io.BytesIO()
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.write(pdf)
    pdf.seek(0)
    pdf.name = "blank.pdf"
    r = alice["api"].post("/api/storage/document", {"title": "scan", "file": pdf}, format="multipart")
    assert r.status_code == 201, r.content
    text = io.BytesIO(b"Photosynthesis turns light into sugar.")
    text.name = "notes.txt"
    r = alice["api"].post("/api/storage/document", {"title": "notes", "file": text}, format="multipart")
    assert r.status_code == 201 and r.json()["content"] == "Photosynthesis turns light into sugar."
    bad = io.BytesIO(b"%PDF-garbage")
    bad.name = "bad.pdf"
    r = alice["api"].post("/api/storage/document", {"title": "bad", "file": bad}, format="multipart")
    assert r.status_code == 400


def test_a_form_field_is_taken_as_sent(alice):
    """Multipart values mean what they say: an empty kind is a bad kind (not "the default"), an
    empty file an empty version (found by schema fuzzing)."""
    api = alice["api"]
    empty_kind = api.post("/api/storage/document", {"title": "t", "kind": "", "content": "x"}, format="multipart")
    assert empty_kind.status_code == 400 and "kind" in empty_kind.json()["error"]["fields"]
    empty_id = api.post("/api/storage/document", {"title": "t", "id": "", "content": "x"}, format="multipart")
    assert empty_id.status_code == 400 and "id" in empty_id.json()["error"]["fields"]
    empty = io.BytesIO(b"")
    empty.name = "empty.txt"
    saved = api.post("/api/storage/document", {"title": "empty", "file": empty}, format="multipart")
    assert saved.status_code == 201, saved.content
    assert saved.json()["content"] is None  # an empty version has no content, as one saved with ""


def _reopen_claim(api, path: str, idempotency_key: str, started_us: int) -> None:
    """Leave the claim of an ``Idempotency-Key`` as a first attempt that crashed after its writes
    does: the time it began, no stored answer, so the next attempt re-runs in the same scope."""
    from django.test import RequestFactory

    from mookti import keys as mookti_keys
    from mookti.api.idempotency import _digest
    from mookti.redis import get_redis

    request = RequestFactory().post(path, **api.client._credentials)  # the caller's headers name the claim
    claim = mookti_keys.idempotency(_digest(request, idempotency_key))
    assert get_redis().get(claim).startswith("{")  # the first attempt's stored answer
    get_redis().set(claim, started_us // 1000)


def test_a_replayed_document_save_is_one_version(alice):
    """A re-run of a save with the same Idempotency-Key (its first outcome unknown) answers like the
    first attempt and writes no second version (the guard is checked in the save's atomic step)."""
    from mookti import keys as mookti_keys
    from mookti.redis import get_redis

    api = alice["api"]
    body = {"title": "Once", "kind": "text", "content": "only one"}
    first = api.post("/api/storage/document", body, HTTP_IDEMPOTENCY_KEY="doc-save-1")
    assert first.status_code == 201, first.content
    doc = first.json()
    _reopen_claim(api, "/api/storage/document", "doc-save-1", iso_us(doc["createdAt"]))
    events_before = get_redis().xlen(mookti_keys.events(alice["id"]))

    again = api.post("/api/storage/document", body, HTTP_IDEMPOTENCY_KEY="doc-save-1")
    assert again.status_code == 201, again.content
    assert again.json() == doc and "Idempotent-Replayed" not in again  # a re-run, not the stored answer
    versions = api.get(f"/api/storage/document/{doc['id']}/versions").json()
    assert [v["createdAt"] for v in versions] == [doc["createdAt"]]
    assert get_redis().xlen(mookti_keys.events(alice["id"])) == events_before  # no second document.saved
    other = api.post("/api/storage/document", {**body, "id": doc["id"]}, HTTP_IDEMPOTENCY_KEY="doc-save-2")
    assert other.status_code == 201 and other.json()["createdAt"] != doc["createdAt"]  # a new key saves anew


def iso_us(text: str) -> int:
    from datetime import datetime

    from mookti.ids import to_us

    return to_us(datetime.fromisoformat(text.replace("Z", "+00:00")))
