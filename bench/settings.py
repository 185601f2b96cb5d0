"""Settings of the benchmark server (``bench/api.py`` sets ``DJANGO_SETTINGS_MODULE=bench.settings``).

The product's settings, plus: bare-view URLs next to the product's (``bench.bare_urls``) and
the round-trip counter (``bench.roundtrips``) as the outermost middleware.
"""

from bench import roundtrips
from mookti.settings import *  # noqa: F403
from mookti.settings import MIDDLEWARE

roundtrips.install()

ROOT_URLCONF = "bench.bare_urls"
MIDDLEWARE = ["bench.roundtrips.RoundtripMiddleware", *MIDDLEWARE]
