"""Where apps plug into the staff admin: pages, user-page panels and links, operations panels, counts.

Each app registers from its own ``staff`` module (``gamification/staff.py``,
``storage/search/staff.py``), which :class:`storage.staff.apps.StaffConfig` imports at start-up
(like Django's ``admin.py`` autodiscovery), so the admin imports no app and a new app touches only
its own folder. Registrations are keyed by name: importing a module twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse


@dataclass(frozen=True)
class Page:
    """A view ``view(request, site, **kwargs)`` at ``mookti/<route>``, named ``admin:<name>``.

    With a ``title`` it is also listed on the admin index (by ``order``).
    """

    route: str
    view: Callable[..., HttpResponse]
    name: str
    title: str = ""
    order: int = 100


@dataclass(frozen=True)
class UserPanel:
    """A panel on a user's page: ``template`` drawn with ``panel`` = ``context(user)`` (skipped if None)."""

    name: str
    template: str
    context: Callable[[dict[str, Any]], dict[str, Any] | None]
    order: int = 100


@dataclass(frozen=True)
class UserLink:
    """A link among a user's page tools: ``url(site, user_id)``; ``element_id`` for tests and styling."""

    title: str
    url: Callable[[Any, str], str]
    element_id: str = ""
    order: int = 100


@dataclass(frozen=True)
class OperationsPanel:
    """A panel on the operations page: ``template`` drawn with ``panel`` = ``context()``."""

    name: str
    template: str
    context: Callable[[], dict[str, Any]]
    order: int = 100


_pages: dict[str, Page] = {}
_user_panels: dict[str, UserPanel] = {}
_user_links: dict[str, UserLink] = {}
_operations_panels: dict[str, OperationsPanel] = {}
_counts: dict[str, Callable[[], list[tuple[str, int]]]] = {}
_deletion_notes: dict[str, str] = {}


def register_page(page: Page) -> None:
    _pages[page.name] = page


def register_user_panel(panel: UserPanel) -> None:
    _user_panels[panel.name] = panel


def register_user_link(link: UserLink) -> None:
    _user_links[link.title] = link


def register_operations_panel(panel: OperationsPanel) -> None:
    _operations_panels[panel.name] = panel


def register_counts(name: str, counts: Callable[[], list[tuple[str, int]]]) -> None:
    """Exact counts ``[(label, number)]`` shown in the operations page's counts table."""
    _counts[name] = counts


def register_user_deletion_note(name: str, note: str) -> None:
    """What deleting a user also removes, as the confirmation page tells it (one sentence)."""
    _deletion_notes[name] = note


def _ordered(items: dict[str, Any]) -> list[Any]:
    return sorted(items.values(), key=lambda item: item.order)


def pages() -> list[Page]:
    return _ordered(_pages)


def user_panels() -> list[UserPanel]:
    return _ordered(_user_panels)


def user_links() -> list[UserLink]:
    return _ordered(_user_links)


def operations_panels() -> list[OperationsPanel]:
    return _ordered(_operations_panels)


def counts() -> list[tuple[str, int]]:
    return [row for name in sorted(_counts) for row in _counts[name]()]


def user_deletion_notes() -> list[str]:
    return [_deletion_notes[name] for name in sorted(_deletion_notes)]
