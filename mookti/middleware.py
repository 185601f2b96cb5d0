"""The browser middleware (sessions, CSRF, auth, messages) skipped for token API requests.

The staff admin and a browser on the API need sessions, CSRF checks, ``request.user`` and
messages; a request under ``/api/`` carrying an ``Authorization`` header does not: DRF's
``BearerAuthentication`` comes first and either authenticates it or rejects it, so the session
is never consulted. Skipping these four saves their per-request work on the hot path (issue 16).
CSRF's ``process_view`` still runs for every request (DRF's API views are exempt anyway).
"""

from __future__ import annotations

from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware as _Csrf


def is_token_request(request: HttpRequest) -> bool:
    return "HTTP_AUTHORIZATION" in request.META and request.path_info.startswith("/api/")


class BrowserOnly:
    """Mixin: call the wrapped middleware only for requests that are not token API requests."""

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if is_token_request(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(BrowserOnly, _Sessions):
    pass


class CsrfViewMiddleware(BrowserOnly, _Csrf):
    pass


class AuthenticationMiddleware(BrowserOnly, _Authentication):
    pass


class MessageMiddleware(BrowserOnly, _Messages):
    pass
