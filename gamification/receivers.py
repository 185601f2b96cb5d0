"""Hooks into the storage app (connected in ``GamificationConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from gamification.managers import activity, delete_user
from mookti.redis import Write
from storage.signals import messages_saving, user_deleting


@receiver(messages_saving, dispatch_uid="gamification.learner_messages")
def count_learner_messages(
    sender: Any, write: Write, user: dict[str, Any], messages: list[dict[str, Any]], **_: Any
) -> None:
    """A learner's messages are activity, applied in the same write as the messages."""
    activity.stage_messages(write, user, messages)


@receiver(user_deleting, dispatch_uid="gamification.delete_user")
def delete_gamification(sender: Any, user_id: str, **_: Any) -> None:
    delete_user(user_id)
