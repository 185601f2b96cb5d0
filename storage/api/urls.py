from rest_framework.routers import SimpleRouter

from storage.api import views

# Seed paths have no trailing slash (/api/storage/chat); both forms are served.
router = SimpleRouter()
router.trailing_slash = "/?"
router.register("user", views.UserViewSet, basename="user")
router.register("token", views.TokenViewSet, basename="token")
router.register("chat", views.ChatViewSet, basename="chat")
router.register("message", views.MessageViewSet, basename="message")
router.register("vote", views.VoteViewSet, basename="vote")
router.register("document", views.DocumentViewSet, basename="document")

urlpatterns = router.urls
