"""``load_learning`` and ``reindex --learning``: files to a learning namespace, searched with its source named."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mookti.redis import get_redis
from storage.search import keys as search_keys
from storage.search.learning import record_prefix
from storage.search.vectors import get_vector_store
from tests.search.conftest import search_api

NAMESPACE = "learning-test"


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF whose page shows ``text`` (what pypdf reads back)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


@pytest.fixture
def course(tmp_path: Path, local, settings) -> Iterator[Path]:
    settings.MOOKTI_SEARCH = {**settings.MOOKTI_SEARCH, "LEARNING_NAMESPACES": [NAMESPACE]}
    folder = tmp_path / "course"
    (folder / "biology").mkdir(parents=True)
    (folder / "biology" / "cells.md").write_text("# Cell biology\n\nMitochondria are the powerhouse of the cell.\n")
    (folder / "history.txt").write_text("The French Revolution began in 1789 with the storming of the Bastille.")
    (folder / "energy.pdf").write_bytes(tiny_pdf("The Krebs cycle releases stored energy"))
    rows = [
        {"id": "card-1", "title": "Spaced repetition", "text": "Leitner boxes schedule reviews of flashcards."},
        {
            "id": "card-2",
            "title": "Photosynthesis",
            "text": "Chlorophyll absorbs red and blue light.",
            "path": "deck/p",
        },
    ]
    (folder / "cards.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    yield folder
    get_redis().delete(search_keys.learning_items(NAMESPACE))


def load(*args: str) -> str:
    out = io.StringIO()
    call_command("load_learning", *args, "--namespace", NAMESPACE, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_files_are_loaded_once_and_hits_name_their_source(course, make_user):
    assert "5 items, 5 embedded, 0 unchanged, 0 removed" in load(str(course))
    assert "5 items, 0 embedded, 5 unchanged" in load(str(course))  # idempotent by content hash
    user = make_user(name="Learner")
    groups = search_api(user, "powerhouse of the cell", kinds=["learning"]).json()["results"]
    assert groups[0]["type"] == "learning" and groups[0]["namespace"] == NAMESPACE
    assert (groups[0]["title"], groups[0]["source"]) == ("Cell biology", "biology/cells.md")
    pdf = search_api(user, "Krebs cycle", kinds=["learning"]).json()["results"][0]
    assert pdf["source"] == "energy.pdf"
    card = search_api(user, "Leitner boxes", includeLearning=True).json()["results"][0]
    assert (card["id"], card["source"]) == ("card-1", "card-1")
    assert search_api(user, "Leitner boxes").json()["results"] == []  # not searched unless asked


def test_a_changed_item_is_embedded_again_and_sync_removes_the_missing(course):
    load(str(course))
    (course / "history.txt").write_text("The Bastille fell on 14 July 1789.")
    (course / "energy.pdf").unlink()
    assert "4 items, 1 embedded, 3 unchanged, 0 removed" in load(str(course))
    store = get_vector_store()
    assert store.list_ids(NAMESPACE, record_prefix("energy.pdf"))  # kept without --sync
    assert "4 items, 0 embedded, 4 unchanged, 1 removed" in load(str(course), "--sync")
    assert store.list_ids(NAMESPACE, record_prefix("energy.pdf")) == []
    assert "energy.pdf" not in get_redis().hkeys(search_keys.learning_items(NAMESPACE))


def test_reindex_learning_rebuilds_from_the_stored_items(course, make_user):
    load(str(course))
    store = get_vector_store()
    store.delete_namespace(NAMESPACE)
    out = io.StringIO()
    call_command("reindex", "--learning", "--no-progress", stdout=out)
    assert "Reindexed 5 learning items into learning-test" in out.getvalue()
    assert store.stats()["namespaces"][NAMESPACE] == 5
    user = make_user(name="Learner")
    assert search_api(user, "Bastille", kinds=["learning"]).json()["results"][0]["source"] == "history.txt"


def test_a_bad_source_is_named(course):
    (course / "broken.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(CommandError, match=r"broken\.jsonl:1: each line needs a non-empty string 'text'"):
        load(str(course))
    with pytest.raises(CommandError, match="no such file or folder"):
        load(str(course / "missing"))
