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
