"""ASGI entry point: HTTP (Django, through the WSGI bridge) and websockets (Channels) on one server.

The requests a chat client sends most (``storage.api.hot``: list chats, get a chat, a message
page, save messages) are answered on the event loop when they are plain, without Django's handler
or a worker thread.

Two kinds of HTTP request skip the bridge and go to Django's ASGI handler: stream reads
(``GET /api/storage/stream/{id}``, server-sent events that must be sent as they come, which the
bridge cannot do: it sends whole responses) and the health checks (so a load balancer's probe
never waits in the bridge's queue behind requests stuck on a stalled Redis).
"""

import gc
import os
import re

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
django_wsgi_app = get_wsgi_application()
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - after Django is set up
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402

from mookti.wsgi_bridge import WSGIBridge  # noqa: E402
from storage.api import hot  # noqa: E402
from storage.realtime.routing import websocket_urlpatterns  # noqa: E402

# Under DEBUG (make run) uvicorn serves the admin's CSS/JS itself, as runserver would; in production
# whitenoise (a middleware, see settings) serves STATIC_ROOT as `manage.py serve` collected it.
wsgi_app = StaticFilesHandler(django_wsgi_app) if settings.DEBUG else django_wsgi_app
bridge = WSGIBridge(wsgi_app, threads=settings.MOOKTI_WEB_THREADS)
ASGI_PATHS = re.compile(r"^/api/(storage/stream/[^/]+|health(/live|/ready)?)/?$")


async def http_app(scope: dict, receive, send) -> None:
    if scope["method"] in ("GET", "HEAD") and ASGI_PATHS.match(scope["path"]):
        await django_asgi_app(scope, receive, send)
    else:
        if scope["method"] in ("GET", "POST"):
            receive = await hot.answer_asgi(scope, receive, send)  # None once answered
        if receive is not None:
            await bridge(scope, receive, send)


application = ProtocolTypeRouter({"http": http_app, "websocket": URLRouter(websocket_urlpatterns)})

# The ~100k objects of the loaded code and settings live as long as the process: moved out of the
# collector's generations, a full collection no longer walks them (about 37 ms of every thread
# held up). With them frozen, CPython's rule "a full collection once the survivors since the last
# one reach a quarter of the long-lived" fired every few hundred requests; collecting less often
# (20,000 allocations for the youngest generation, 20 for the older ones) took the p99 of posts
# from 165-211 ms to about 50 ms at the same throughput (issue 16, docs/benchmarks.md).
gc.freeze()
gc.set_threshold(20_000, 20, 20)
