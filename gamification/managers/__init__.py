"""Redis-backed managers: the only code that reads and writes the gamification app's keys.

For the admin: ``summary(user_id, days)`` returns a learner's whole state (streak, XP,
achievements, daily stats, goals, progress) and ``streaks.restore(user_id, current,
last_activity, restored_by=..., reason=...)`` repairs a streak broken by an outage.
"""

from gamification.managers.activity import activity
from gamification.managers.goals import goals
from gamification.managers.leaderboard import leaderboard
from gamification.managers.progress import progress
from gamification.managers.stats import stats
from gamification.managers.streaks import streaks
from gamification.managers.summary import delete_user, summary

restore_streak = streaks.restore

__all__ = [
    "activity",
    "delete_user",
    "goals",
    "leaderboard",
    "progress",
    "restore_streak",
    "stats",
    "streaks",
    "summary",
]
