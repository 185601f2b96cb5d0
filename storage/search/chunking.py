"""Split a document into overlapping chunks for embedding.

Chunks are measured in characters (about 4 per token in English, so the default 1,000 characters
fit the local model's 256-token window and are far below OpenAI's 8,192). A chunk ends at the
last paragraph, line or sentence break in its second half when there is one, so chunks rarely
cut a sentence; consecutive chunks overlap so a passage across a boundary is found from both.
"""

from __future__ import annotations

import re

BREAKS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")


def chunk_text(text: str, size: int = 1000, overlap: int = 150) -> list[str]:
    """Non-empty chunks of at most ``size`` characters, each sharing ~``overlap`` with the previous."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError("chunk size must be positive and overlap smaller than it")
    text = re.sub(r"[ \t\r\f\v]+", " ", text).strip()
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            window = text[start:end]
            for mark in BREAKS:
                cut = window.rfind(mark, size // 2)
                if cut != -1:
                    end = start + cut + len(mark)
                    break
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
        # start the overlap at a word boundary
        space = text.find(" ", start, end)
        if space != -1 and space < end - 1:
            start = space + 1
    return chunks
