"""Fault tests reuse the search suite's fixtures: fake Pinecone/OpenAI behind the real SDKs, an empty
outbox per test, indexers with fast test settings, the SDK's retry waits recorded instead of slept."""

from tests.search.conftest import (  # noqa: F401 - fixtures
    fake_openai,
    fake_pinecone,
    fresh_index_state,
    make_indexer,
    pinecone_retry_waits,
    remote,
)
