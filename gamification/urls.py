from django.urls import re_path
from rest_framework.routers import SimpleRouter

from gamification import views

# Like /api/storage/: paths are served with or without a trailing slash.
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("goals", views.GoalViewSet, basename="goal")
router.register("progress", views.ProgressViewSet, basename="progress")

urlpatterns = [
    re_path(r"^streak/?$", views.StreakView.as_view(), name="gamification-streak"),
    re_path(r"^activity/?$", views.ActivityView.as_view(), name="gamification-activity"),
    re_path(r"^stats/?$", views.StatsView.as_view(), name="gamification-stats"),
    re_path(r"^leaderboard/?$", views.LeaderboardView.as_view(), name="gamification-leaderboard"),
    re_path(r"^achievements/?$", views.AchievementsView.as_view(), name="gamification-achievements"),
    re_path(r"^summary/?$", views.SummaryView.as_view(), name="gamification-summary"),
    *router.urls,
]
