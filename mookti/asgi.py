"""ASGI entry point: HTTP (Django) and websockets (Channels) on one server."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after Django is set up
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from storage.realtime.routing import websocket_urlpatterns  # noqa: E402

# Under DEBUG (make run) uvicorn serves the admin's CSS/JS itself, as runserver would; in production
# whitenoise (a middleware, see settings) serves STATIC_ROOT as `manage.py serve` collected it.
http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app

application = ProtocolTypeRouter({"http": http_app, "websocket": URLRouter(websocket_urlpatterns)})
