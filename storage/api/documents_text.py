"""Text of an uploaded document: PDFs through pypdf, anything else as UTF-8 text."""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile
from rest_framework import serializers

PDF_MAGIC = b"%PDF-"


def extract_text(upload: UploadedFile) -> str:
    head = upload.read(len(PDF_MAGIC))
    upload.seek(0)
    if head == PDF_MAGIC:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(upload)
            return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()
        except (PdfReadError, ValueError, KeyError) as exc:
            raise serializers.ValidationError({"file": [f"Not a readable PDF: {exc}"]}) from None
    try:
        return upload.read().decode("utf-8")
    except UnicodeDecodeError:
        raise serializers.ValidationError({"file": ["Upload a PDF or UTF-8 text."]}) from None
