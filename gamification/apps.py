from django.apps import AppConfig


class GamificationConfig(AppConfig):
    name = "gamification"
    verbose_name = "Gamification and progress"

    def ready(self) -> None:
        from gamification import receivers  # noqa: F401  (connects the storage signal receivers)
