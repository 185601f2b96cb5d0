"""Conditional GETs: a strong ``ETag`` on every answer, 304 for a client whose copy is current.

The ETag comes from a revision counter read in the request's first round trip
(:mod:`storage.managers.revisions`), so a 304 costs no entity reads and no serialization. Data
never bumped has no counter; its ETag is then a digest of the body (correct, just not cheaper).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.response import Response

from mookti.redis import Plan
from storage.managers.revisions import NotModified, Revision

CACHE_CONTROL = "private, no-cache"

# For extend_schema: the request header and the 304 answer.
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="An ETag from an earlier answer: 304 without a body if it is still current",
)
NOT_MODIFIED = {304: OpenApiResponse(description="Not modified: the ETag in If-None-Match is current")}


def revision(request: Any, scope: str, entity_id: str, field: str, media_type: str | None = None) -> Revision:
    """The revision a GET reads: its counter, plus the URL and media type (each variant has its own
    tag). ``media_type``: the accepted one, for a plain Django request (the hot reads)."""
    variant = f"{request.get_full_path()}|{media_type or request.accepted_media_type}"
    return Revision(scope, entity_id, field, variant, request.META.get("HTTP_IF_NONE_MATCH", ""))


def evaluate(rev: Revision, build: Callable[[], Any]) -> tuple[int, Any, str]:
    """Run ``build`` (the manager call that reads with ``rev``): (200, data, ETag) or (304, None, ETag)."""
    try:
        data = build()
    except NotModified as current:
        return status.HTTP_304_NOT_MODIFIED, None, current.etag
    return _tag(rev, data)


def evaluate_plan(rev: Revision, plan: Plan[Any]) -> Plan[tuple[int, Any, str]]:
    """:func:`evaluate` of a read plan (:mod:`mookti.redis`), as a read plan."""
    try:
        data = yield from plan
    except NotModified as current:
        return status.HTTP_304_NOT_MODIFIED, None, current.etag
    return _tag(rev, data)


def _tag(rev: Revision, data: Any) -> tuple[int, Any, str]:
    """The answer to a read that was not cut short: its ETag (the counter's, else the body's)."""
    etag = rev.etag
    if etag is None:
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
        etag = f'"b.{hashlib.sha256(body).hexdigest()[:32]}"'
        if rev.matches(etag):
            return status.HTTP_304_NOT_MODIFIED, None, etag
    return status.HTTP_200_OK, data, etag


def conditional(rev: Revision, build: Callable[[], Any]) -> Response:
    """:func:`evaluate` as a DRF answer: 200 with an ETag, or 304."""
    code, data, etag = evaluate(rev, build)
    return _tagged(Response(data, status=code), etag)


def _tagged(response: Response, etag: str) -> Response:
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response
