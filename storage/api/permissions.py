"""Permission classes: who may call an endpoint at all. Object access (own data, public
chats) is checked by the managers, which load the object in the same round trip."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from storage.api.auth import Principal


def actor_id(request) -> str | None:
    """The user the request acts for, if any."""
    user = getattr(request, "user", None)
    return user.user_id if isinstance(user, Principal) else None


class IsMooktiUser(BasePermission):
    """A user token, or the service key acting for a user."""

    message = "Authenticate with a user token, or the service key and X-Mookti-User."

    def has_permission(self, request, view) -> bool:
        return actor_id(request) is not None


class IsMooktiUserOrReadOnly(IsMooktiUser):
    """Reads are open (managers let anonymous callers see public chats only)."""

    anonymous_methods = SAFE_METHODS  # the schema's anonymous alternative in ``security``

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or super().has_permission(request, view)


class IsService(BasePermission):
    """The trusted webapp backend (service key), acting for nobody or for a user."""

    message = "This endpoint needs the service key."

    def has_permission(self, request, view) -> bool:
        user = getattr(request, "user", None)
        return isinstance(user, Principal) and user.is_service


class IsServiceOrSelf(BasePermission):
    """The service key acting for nobody, or the user the URL names (a token, or the service key
    with ``X-Mookti-User``: acting for a user scopes the call to that user, as everywhere)."""

    def has_permission(self, request, view) -> bool:
        user = getattr(request, "user", None)
        if not isinstance(user, Principal):
            return False
        if user.user_id is None:
            return user.is_service
        return user.user_id == view.kwargs.get("pk")
