"""ASGI entry point: HTTP (Django, through the WSGI bridge) and websockets (Channels) on one server."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
django_wsgi_app = get_wsgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after Django is set up
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402

from mookti.wsgi_bridge import WSGIBridge  # noqa: E402
from storage.realtime.routing import websocket_urlpatterns  # noqa: E402

# Under DEBUG (make run) uvicorn serves the admin's CSS/JS itself, as runserver would; in production
# whitenoise (a middleware, see settings) serves STATIC_ROOT as `manage.py serve` collected it.
wsgi_app = StaticFilesHandler(django_wsgi_app) if settings.DEBUG else django_wsgi_app
http_app = WSGIBridge(wsgi_app, threads=settings.MOOKTI_WEB_THREADS)

application = ProtocolTypeRouter({"http": http_app, "websocket": URLRouter(websocket_urlpatterns)})
