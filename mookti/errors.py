"""The domain errors managers raise: plain exceptions with a code and the HTTP status they map to.

Codes follow ai-chatbot's ``type:surface`` style (``bad_request:api``, ``not_found:chat``, ...);
:mod:`mookti.api.exceptions` renders them (and every other error) in the one error format.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class DomainError(Exception):
    """Base of the domain errors: managers raise these, the handler renders them."""

    status_code: int = HTTPStatus.BAD_REQUEST
    code = "bad_request:api"

    def __init__(self, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class Invalid(DomainError):
    pass


class NotFound(DomainError):
    status_code = HTTPStatus.NOT_FOUND

    def __init__(self, what: str, message: str | None = None) -> None:
        super().__init__(message or f"{what.capitalize()} not found.")
        self.code = f"not_found:{what}"


class Unauthorized(DomainError):
    """Bad credentials (e.g. a wrong email or password when asking for a token)."""

    status_code = HTTPStatus.UNAUTHORIZED
    code = "unauthorized:auth"


class Forbidden(DomainError):
    status_code = HTTPStatus.FORBIDDEN
    code = "forbidden:api"


class Conflict(DomainError):
    status_code = HTTPStatus.CONFLICT
    code = "conflict:api"


class PayloadTooLarge(DomainError):
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large:api"


class RateLimited(DomainError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limit:chat"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class Unavailable(DomainError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "unavailable:api"
