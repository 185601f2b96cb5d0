"""``run_indexer`` (standalone process, SIGTERM) and ``reindex``; settings defaults from the environment."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from mookti.redis import get_redis
from storage.search import keys as search_keys
from storage.search.vectors import user_namespace
from tests.search.conftest import DIMENSION, new_chat

BASE_DIR = Path(settings.BASE_DIR)


def remote_env(remote) -> dict[str, str]:
    """The environment that makes a fresh process pick OpenAI and Pinecone (the fake servers)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PINECONE_", "MOOKTI_VECTOR", "MOOKTI_EMB"))
    }
    env.update(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=f"{remote['openai'].url}/v1",
        OPENAI_EMBEDDING_DIMENSIONS=str(DIMENSION),
        PINECONE_API_KEY="pc-test",
        PINECONE_INDEX_HOST=remote["pinecone"].url,
        PYTHONUNBUFFERED="1",
    )
    return env


def test_run_indexer_runs_standalone_and_stops_on_sigterm(remote, make_user):
    user = make_user(user_type="pro")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_indexer", "--consumer", "standalone-1"],
        cwd=BASE_DIR,
        env=remote_env(remote),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        chat = new_chat(user, "Background", ["indexed by another process", "while the API answers"])
        expected = {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]}
        deadline = time.monotonic() + 60
        while set(remote["pinecone"].vectors(user_namespace(user["id"]))) != expected:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the indexer process did not index the messages"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Indexer standalone-1: openai/text-embedding-3-small@64 -> pinecone:" in out
    assert "Indexer standalone-1 stopped" in out and "'entries': 2" in out


def test_run_indexer_drain_and_reindex_commands(remote, make_user):
    user = make_user(user_type="pro")
    chat = new_chat(user, "Commands", ["first", "second", "third"])
    out = io.StringIO()
    call_command("run_indexer", "--drain", stdout=out)
    assert "Outbox drained" in out.getvalue() and "'upserted': 3" in out.getvalue()
    remote["pinecone"].reset()
    out, err = io.StringIO(), io.StringIO()
    call_command("reindex", stdout=out, stderr=err)
    assert "Reindexed" in out.getvalue() and "into pinecone:" in out.getvalue()
    assert "item" in err.getvalue()  # the progress bar
    stored = remote["pinecone"].vectors(user_namespace(user["id"]))
    assert {f"msg:{chat['id']}#{m['id']}" for m in chat["messages"]} <= set(stored)


def test_run_indexer_refuses_another_model(remote):
    get_redis().hset(
        search_keys.vector_index_meta(), mapping={"model": "openai/other@64", "dimension": "64", "store": "elsewhere"}
    )
    with pytest.raises(CommandError, match=r"Run `manage\.py reindex`"):
        call_command("run_indexer", "--drain")


ENVIRONMENTS = [
    ({}, "local.SentenceTransformerEmbeddings", "lancedb.LanceDBVectorStore"),
    ({"OPENAI_API_KEY": "sk"}, "openai.OpenAIEmbeddings", "lancedb.LanceDBVectorStore"),
    ({"PINECONE_API_KEY": "pc"}, "local.SentenceTransformerEmbeddings", "lancedb.LanceDBVectorStore"),
    (
        {"OPENAI_API_KEY": "sk", "PINECONE_API_KEY": "pc", "PINECONE_INDEX_HOST": "https://x.pinecone.io"},
        "openai.OpenAIEmbeddings",
        "pinecone.PineconeVectorStore",
    ),
    (
        {"OPENAI_API_KEY": "sk", "MOOKTI_EMBEDDINGS_BACKEND": "local"},
        "local.SentenceTransformerEmbeddings",
        "lancedb.LanceDBVectorStore",
    ),
    (
        {"OPENAI_API_KEY": "sk", "MOOKTI_EMBEDDINGS": "local", "MOOKTI_VECTOR_STORE": "pinecone"},
        "local.SentenceTransformerEmbeddings",
        "pinecone.PineconeVectorStore",
    ),
    (
        {"MOOKTI_EMBEDDINGS": "storage.search.embeddings.openai.OpenAIEmbeddings"},
        "openai.OpenAIEmbeddings",
        "lancedb.LanceDBVectorStore",
    ),
]
# Reads the settings module once per environment in one fresh process (no Django setup needed).
CHOOSE = """
import importlib, json, os, sys
from mookti.backends import backend_config
from storage.search.embeddings import Embeddings
from storage.search.vectors import VectorStore
base = dict(os.environ)
for extra in json.loads(sys.argv[1]):
    os.environ.clear(); os.environ.update(base); os.environ.update(extra)
    module = importlib.reload(importlib.import_module("mookti.settings"))
    chosen = [
        backend_config("MOOKTI_EMBEDDINGS", module.MOOKTI_EMBEDDINGS, Embeddings)[0],
        backend_config("MOOKTI_VECTOR_STORE", module.MOOKTI_VECTOR_STORE, VectorStore)[0],
    ]
    print(json.dumps(chosen))
"""


def test_backend_defaults_follow_the_environment():
    prefixes = ("OPENAI_", "PINECONE_", "MOOKTI_VECTOR", "MOOKTI_EMB")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    result = subprocess.run(
        [sys.executable, "-c", CHOOSE, json.dumps([extra for extra, _, _ in ENVIRONMENTS])],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    chosen = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert chosen == [[f"storage.search.embeddings.{e}", f"storage.search.vectors.{s}"] for _, e, s in ENVIRONMENTS]
