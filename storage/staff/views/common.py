"""What every admin page shares (and apps' ``staff`` modules use): rendering inside the admin, bad input, times."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import messages as flash
from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from mookti.errors import DomainError, NotFound
from mookti.ids import InvalidId, from_us, is_valid_id
from storage.managers import users

View = Callable[..., HttpResponse]


class BadInput(Exception):
    """A query or form value the page cannot use: rendered as a 400 with this message."""


class Refused(Exception):
    """An action this deployment does not allow (e.g. raw key deletion switched off): a 403."""


def render(request: HttpRequest, site: AdminSite, template: str, context: dict[str, Any], status: int = 200):
    """A page inside the admin: site header, nav sidebar and user links come from ``each_context``."""
    request.current_app = site.name
    return TemplateResponse(request, template, {**site.each_context(request), **context}, status=status)


def error_page(request: HttpRequest, site: AdminSite, status: int, title: str, message: str) -> HttpResponse:
    return render(request, site, "admin/mookti/error.html", {"title": title, "message": message}, status=status)


def page(site: AdminSite, view: View) -> View:
    """Wrap ``view(request, site, **kwargs)`` as a staff-only admin view that never answers a 500 for bad input."""

    def handle(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, site, **kwargs)
        except (BadInput, InvalidId) as exc:
            return error_page(request, site, 400, "Bad request", str(exc))
        except Refused as exc:
            return error_page(request, site, 403, "Not allowed", str(exc))
        except DomainError as exc:
            title = "Not found" if exc.status_code == 404 else "Request failed"
            return error_page(request, site, exc.status_code, title, exc.message)

    handle.__name__ = view.__name__
    handle.__doc__ = view.__doc__
    return site.admin_view(handle)


# --- input -------------------------------------------------------------------------------------
def id_param(value: str, what: str) -> str:
    if not is_valid_id(value):
        raise BadInput(f"“{value[:120]}” is not a valid {what} id (1-100 letters, digits, '-', '_' or '.').")
    return value


def int_param(request: HttpRequest, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name}: “{raw[:40]}” is not a whole number.") from None
    if not minimum <= value <= maximum:
        raise BadInput(f"{name}: must be between {minimum} and {maximum}.")
    return value


def choice_param(value: str | None, name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    if value in (None, ""):
        return None
    if value not in choices:
        raise BadInput(f"{name}: “{str(value)[:40]}” is not one of {', '.join(choices)}.")
    return value


def load_user(user_id: str) -> dict[str, Any]:
    """The user a URL names, or a 404 page."""
    user = users.get(id_param(user_id, "user"))
    if user is None:
        raise NotFound("user")
    return user


def user_url(site: AdminSite, user_id: str) -> str:
    return reverse("admin:mookti_user", args=[user_id], current_app=site.name)


def optional_id(request: HttpRequest, name: str, what: str) -> str | None:
    value = request.GET.get(name, "").strip()
    return id_param(value, what) if value else None


def confirmed(request: HttpRequest) -> bool:
    """A POST that carries the confirmation page's ``confirm=yes`` (the admin's CSRF check ran already)."""
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def confirm_page(
    request: HttpRequest,
    site,
    *,
    title: str,
    question: str,
    facts: list[tuple[str, Any]],
    cancel: str,
    button: str = "Yes, I'm sure",
    hidden: dict[str, str] | None = None,
    consequences: list[str] | None = None,
    danger: bool = False,
) -> HttpResponse:
    context = {
        "title": title,
        "question": question,
        "facts": facts,
        "cancel": cancel,
        "button": button,
        "hidden": hidden or {},
        "consequences": consequences or [],
        "danger": danger,
    }
    return render(request, site, "admin/mookti/confirm.html", context)


# --- display -----------------------------------------------------------------------------------
def when(value: int | str | None) -> datetime | None:
    """Microseconds since the epoch as an aware datetime for the ``date`` filter (None if unset)."""
    if value in (None, "", 0, "0"):
        return None
    try:
        return from_us(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def done(request: HttpRequest, message: str, to: str) -> HttpResponseRedirect:
    flash.success(request, message)
    return HttpResponseRedirect(to)
