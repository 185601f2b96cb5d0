"""Signals other apps hook into, so storage never imports them.

``messages_saving`` is sent while a message write is being built: receivers may stage their
own steps into the same ``write`` (e.g. gamification records the learner's activity), so
the activity is applied together with the messages.
"""

from django.dispatch import Signal

# kwargs: write (mookti.redis.Write), user (dict), messages (list[dict])
messages_saving = Signal()
# kwargs: user_id
user_deleting = Signal()
