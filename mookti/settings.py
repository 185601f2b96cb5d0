"""Settings, read from the environment (12-factor).

Every knob has a safe local default so `make run` works on a fresh machine; production
(`DJANGO_DEBUG=false`) refuses to start with the development secret key.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from mookti.logs import logging_config, mask_url

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEV_SECRET_KEY = "dev-insecure-mookti-secret-key-change-me"

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of at least 32 characters when DJANGO_DEBUG is false."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

DATA_DIR = Path(env.str("MOOKTI_DATA_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "storage.staff.apps.MooktiAdminConfig",  # django.contrib.admin with the Mookti pages (storage/staff/site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc shipped with the app (docs render offline)
    "channels",
    "mookti",
    "storage",
    "storage.search",
    "storage.realtime",
    "storage.staff",
    "storage.portability",
    "gamification",
]

# Sessions, CSRF, auth and messages run for the admin and browsers, not for token API requests
# (mookti/middleware.py).
MIDDLEWARE = [
    "mookti.api.exceptions.JsonErrorsMiddleware",  # outermost: sees every /api/ error response
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # /static/ (admin, API docs) in every mode
    "mookti.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "mookti.middleware.CsrfViewMiddleware",
    "mookti.middleware.AuthenticationMiddleware",
    "mookti.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mookti.api.idempotency.idempotency_middleware",
]
# security.W003 looks for Django's own CSRF middleware by name; mookti.middleware's subclass runs
# it for every request that can carry a session (all but bearer-token API calls).
SILENCED_SYSTEM_CHECKS = ["security.W003"]

ROOT_URLCONF = "mookti.urls"
WSGI_APPLICATION = "mookti.wsgi.application"
ASGI_APPLICATION = "mookti.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Only Django's own staff accounts (auth/admin tables) live in SQL; application data lives in Redis.
_database_url = env.str("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'staff.sqlite3'}")
if _database_url.partition("://")[0] not in environ.Env.DB_SCHEMES:
    raise ImproperlyConfigured(
        f"DATABASE_URL {mask_url(_database_url)!r} names no known database (use postgres://user:password@host/name "
        "or sqlite:///path)."
    )
DATABASES = {"default": env.db_url_config(_database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Django's defaults, plus plain bcrypt last so accounts imported from ai-chatbot keep their passwords.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "storage.hashers.ChatbotBCryptPasswordHasher",
]

# --- Redis -------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# "cluster" talks the Redis Cluster protocol (hash tags keep each aggregate in one slot).
REDIS_CLUSTER = env.bool("REDIS_CLUSTER", default=False)
MOOKTI_REDIS_PREFIX = env.str("MOOKTI_REDIS_PREFIX", default="mookti:")
if "{" in MOOKTI_REDIS_PREFIX or "}" in MOOKTI_REDIS_PREFIX:
    raise ImproperlyConfigured("MOOKTI_REDIS_PREFIX must not contain braces (they are hash tags).")
# Every Redis command's timeout (seconds): a stalled Redis turns a request into a 503 within about
# this long. The circuit breaker then refuses commands at once for MOOKTI_REDIS_BREAKER_SECONDS.
MOOKTI_REDIS_TIMEOUT = env.float("MOOKTI_REDIS_TIMEOUT", default=2.0)
MOOKTI_REDIS_BREAKER_SECONDS = env.float("MOOKTI_REDIS_BREAKER_SECONDS", default=0.5)
# How long a write's idempotency guard (and an Idempotency-Key's stored answer) is kept.
MOOKTI_IDEMPOTENCY_TTL = env.int("MOOKTI_IDEMPOTENCY_TTL", default=24 * 3600)
# The channel layer needs a non-cluster Redis (channels-redis has no cluster support).
CHANNEL_REDIS_URL = env.str("CHANNEL_REDIS_URL", default=REDIS_URL if not REDIS_CLUSTER else "redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": CHANNEL_REDIS_URL if REDIS_CLUSTER else REDIS_URL,
        "KEY_PREFIX": f"{MOOKTI_REDIS_PREFIX}cache",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"

# Redis pub/sub: a best-effort poke to live sockets; the replay stream makes delivery complete.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [{"address": CHANNEL_REDIS_URL, "socket_connect_timeout": 5}],
            "prefix": f"{MOOKTI_REDIS_PREFIX}asgi",
        },
    }
}

# --- Access ------------------------------------------------------------------------------------
MOOKTI_SERVICE_KEY = env.str("MOOKTI_SERVICE_KEY", default="")
MOOKTI_TOKEN_TTL = env.int("MOOKTI_TOKEN_TTL", default=30 * 24 * 3600)
# User messages a user may send in 24 hours, by user type.
MOOKTI_MESSAGE_LIMITS = {
    "guest": env.int("MOOKTI_LIMIT_GUEST", default=20),
    "free": env.int("MOOKTI_LIMIT_FREE", default=50),
    "basic": env.int("MOOKTI_LIMIT_BASIC", default=500),
    "pro": env.int("MOOKTI_LIMIT_PRO", default=2000),
}
MOOKTI_MAX_MESSAGE_BYTES = env.int("MOOKTI_MAX_MESSAGE_BYTES", default=64 * 1024)
MOOKTI_MAX_DOCUMENT_BYTES = env.int("MOOKTI_MAX_DOCUMENT_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MOOKTI_MAX_BODY_BYTES", default=4 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "storage.api.auth.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["storage.api.permissions.IsMooktiUser"],
    # JSON only, whatever Accept says (no browsable API); multipart only where a view takes files.
    "DEFAULT_RENDERER_CLASSES": ["mookti.api.parsers.FastJSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "mookti.api.negotiation.JSONFallbackNegotiation",
    "DEFAULT_PARSER_CLASSES": ["mookti.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "mookti.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "mookti.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mookti storage API",
    "DESCRIPTION": "Users, chats, messages, documents, search and progress of the Mookti tutoring app (Redis).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "UserTypeEnum": "storage.managers.users.USER_TYPES",
        "VoteTypeEnum": ["up", "down"],
        "VisibilityEnum": "storage.managers.chats.VISIBILITIES",
        "RoleEnum": "storage.managers.messages.ROLES",
        "DocumentKindEnum": "storage.managers.documents.KINDS",
        "StreamStatusEnum": "storage.managers.streams.STATUSES",
        "StreamEndStatusEnum": "storage.managers.streams.END_STATUSES",
        "ActiveStreamStatusEnum": "storage.api.streams.ACTIVE_STATUSES",
    },
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    # Session cookies cannot act for a Mookti user: the API's only scheme is the bearer one.
    "AUTHENTICATION_WHITELIST": ["storage.api.auth.BearerAuthentication"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mookti.api.schema.postprocess",
        "mookti.api.idempotency.declare_header",
    ],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# whitenoise serves /static/: from the apps' folders under DEBUG, else from STATIC_ROOT as filled by
# `collectstatic` (which `manage.py serve` runs) with compressed copies and content-hashed names.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# One format for every process, secrets masked, 4xx logged once (mookti/logs.py).
LOGGING = logging_config(
    env.str("MOOKTI_LOG_LEVEL", default="INFO"), json_lines=env.bool("MOOKTI_LOG_JSON", default=False)
)

# --- Deployment behind a TLS proxy (docs/operations.md "Settings for production") -----------------
# Secure by default when DEBUG is off; `manage.py check --deploy` is clean with deploy/production.env.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# A load balancer probes health over plain HTTP on the private network.
SECURE_REDIRECT_EXEMPT = [r"^api/health/"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
# The header a TLS-terminating proxy sets, e.g. X-Forwarded-Proto (it must overwrite a client's own).
_proxy_ssl_header = env.str("DJANGO_PROXY_SSL_HEADER", default="")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")

# Threads that run the (synchronous) API views in each web process (mookti/wsgi_bridge.py). They
# overlap Redis waits; Python code itself runs one thread at a time, so more add little.
MOOKTI_WEB_THREADS = env.int("MOOKTI_WEB_THREADS", default=4)

# --- Live updates --------------------------------------------------------------------------
MOOKTI_EVENTS_MAXLEN = env.int("MOOKTI_EVENTS_MAXLEN", default=1000)
# Events older than this are trimmed from the replay stream; an idle stream expires after it.
MOOKTI_EVENTS_RETENTION = env.int("MOOKTI_EVENTS_RETENTION", default=7 * 24 * 3600)
# Seconds between websocket heartbeats (they never touch Redis).
MOOKTI_WS_HEARTBEAT = env.float("MOOKTI_WS_HEARTBEAT", default=20.0)
# Every this many heartbeats an open socket re-checks its token and its stream in Redis: the safety
# net for a revocation or event poke that never came (both normally arrive at once over pub/sub).
MOOKTI_WS_RECHECK_BEATS = max(1, env.int("MOOKTI_WS_RECHECK_BEATS", default=9))
# Lifetime of a single-use websocket ticket (at most 60 s).
MOOKTI_WS_TICKET_TTL = min(env.int("MOOKTI_WS_TICKET_TTL", default=30), 60)
# Live events buffered per socket before it falls back to reading the stream.
MOOKTI_WS_QUEUE = env.int("MOOKTI_WS_QUEUE", default=256)

# Resumable AI responses (storage/managers/streams.py): caps per stream and per chunk, seconds of
# producer silence before a stream is stale, seconds a buffer is kept after its end, how long a
# stream id still answers "done" (422) instead of 404, and the keep-alive of a waiting reader.
MOOKTI_STREAMS = {
    "MAX_CHUNKS": env.int("MOOKTI_STREAM_MAX_CHUNKS", default=20_000),
    "MAX_BYTES": env.int("MOOKTI_STREAM_MAX_BYTES", default=4 * 1024 * 1024),
    "MAX_CHUNK_BYTES": env.int("MOOKTI_STREAM_MAX_CHUNK_BYTES", default=64 * 1024),
    "MAX_BATCH": env.int("MOOKTI_STREAM_MAX_BATCH", default=256),
    "STALE_AFTER": env.int("MOOKTI_STREAM_STALE_AFTER", default=60),
    "TTL": env.int("MOOKTI_STREAM_TTL", default=3600),
    "LOOKUP_TTL": env.int("MOOKTI_STREAM_LOOKUP_TTL", default=7 * 24 * 3600),
    "HEARTBEAT": env.int("MOOKTI_STREAM_HEARTBEAT", default=15),
}

# --- Gamification (README "Gamification and progress") -------------------------------------
MOOKTI_GAMIFICATION = {
    # XP per activity type: a learner's message, a completed learning item (a node of a learning
    # path), a practice session (POST /api/gamification/activity) and a completed goal.
    "XP": {"message": 2, "item": 10, "practice": 5, "goal": 50},
    # Goal completions that earn XP per local day (stops create-complete-delete farming).
    "GOAL_XP_PER_DAY": env.int("MOOKTI_GOAL_XP_PER_DAY", default=3),
    # One streak freeze is earned per this many streak days; at most FREEZE_MAX are held.
    "FREEZE_EARN_EVERY": env.int("MOOKTI_FREEZE_EARN_EVERY", default=7),
    "FREEZE_MAX": env.int("MOOKTI_FREEZE_MAX", default=2),
    # Offline clients may report activity up to this many days late (older is rejected).
    "BACKFILL_DAYS": env.int("MOOKTI_BACKFILL_DAYS", default=7),
    "STATS_RETENTION_DAYS": env.int("MOOKTI_STATS_RETENTION_DAYS", default=400),
    # Entries shown at the top of the weekly leaderboard, and weeks a board is kept.
    "LEADERBOARD_SIZE": env.int("MOOKTI_LEADERBOARD_SIZE", default=50),
    "LEADERBOARD_WEEKS_KEPT": env.int("MOOKTI_LEADERBOARD_WEEKS_KEPT", default=5),
    "MAX_ACTIVE_GOALS": env.int("MOOKTI_MAX_ACTIVE_GOALS", default=100),
    # Caps per local day that keep the weekly leaderboard meaningful (a request past one is a 429):
    # learning items (reported or completed on a path), minutes of reported or tracked time, and
    # explicit activities per type. Messages are bounded by MOOKTI_MESSAGE_LIMITS already.
    "DAILY_ITEMS": env.int("MOOKTI_DAILY_ITEMS", default=50),
    "DAILY_MINUTES": env.int("MOOKTI_DAILY_MINUTES", default=600),
    "DAILY_ACTIVITIES": {"practice": env.int("MOOKTI_DAILY_PRACTICE", default=20)},
    # Gamification writes (activity, progress, goals) per learner per minute.
    "WRITES_PER_MINUTE": env.int("MOOKTI_GAMIFICATION_WRITES_PER_MINUTE", default=60),
}

# --- Staff admin -------------------------------------------------------------------------------
# The raw key browser may delete keys only when this is set (off by default, as in dj-redis-panel).
MOOKTI_ADMIN_ALLOW_KEY_DELETE = env.bool("MOOKTI_ADMIN_ALLOW_KEY_DELETE", default=False)

# --- Semantic search (docs/search.md) ---------------------------------------------------------
# Backends are chosen the Django way: an alias or a dotted path, MOOKTI_EMBEDDINGS=local|openai|path.Class
# and MOOKTI_VECTOR_STORE=lancedb|pinecone|path.Class (the older MOOKTI_EMBEDDINGS_BACKEND and
# MOOKTI_VECTOR_BACKEND are read too). Each backend reads its own options from the environment
# (OPENAI_*, PINECONE_*, MOOKTI_LANCEDB_PATH); MOOKTI_*_OPTIONS (JSON) override them. Defaults follow
# the environment: OPENAI_API_KEY -> openai, PINECONE_API_KEY + PINECONE_INDEX_HOST -> pinecone;
# otherwise the embedded local model and LanceDB under DATA_DIR.
_embeddings_default = "openai" if env.str("OPENAI_API_KEY", default="") else "local"
_pinecone_configured = env.str("PINECONE_API_KEY", default="") and env.str("PINECONE_INDEX_HOST", default="")
MOOKTI_EMBEDDINGS = {
    "BACKEND": env.str("MOOKTI_EMBEDDINGS", default=env.str("MOOKTI_EMBEDDINGS_BACKEND", default=_embeddings_default)),
    "OPTIONS": env.json("MOOKTI_EMBEDDINGS_OPTIONS", default={}),
}
MOOKTI_VECTOR_STORE = {
    "BACKEND": env.str(
        "MOOKTI_VECTOR_STORE",
        default=env.str("MOOKTI_VECTOR_BACKEND", default="pinecone" if _pinecone_configured else "lancedb"),
    ),
    "OPTIONS": env.json("MOOKTI_VECTOR_STORE_OPTIONS", default={}),
}
MOOKTI_SEARCH = {
    # Pinecone namespace (LanceDB table) of a user's records.
    "USER_NAMESPACE": env.str("MOOKTI_SEARCH_USER_NAMESPACE", default="user-{userId}"),
    # Shared learning-content namespaces (read-only here; they exist in production's index).
    "LEARNING_NAMESPACES": env.list("MOOKTI_SEARCH_LEARNING_NAMESPACES", default=[]),
    "QUERY_CACHE_TTL": env.int("MOOKTI_SEARCH_QUERY_CACHE_TTL", default=7 * 24 * 3600),
    "CHUNK_CHARS": env.int("MOOKTI_SEARCH_CHUNK_CHARS", default=1000),
    "CHUNK_OVERLAP": env.int("MOOKTI_SEARCH_CHUNK_OVERLAP", default=150),
    # Hybrid search: the largest keyword bonus added to a hit's cosine (storage/search/hybrid.py).
    # Unset: the embedding model's own weight (Embeddings.keyword_weight), 0.15 for MiniLM.
    "KEYWORD_WEIGHT": env.float("MOOKTI_SEARCH_KEYWORD_WEIGHT", default=None),
    # Hits below this cosine similarity are not returned (unrelated text scores about 0 with MiniLM).
    "MIN_SCORE": env.float("MOOKTI_SEARCH_MIN_SCORE", default=0.0),
}
# Outbox indexer: every knob and its default is in storage/search/indexer.py (DEFAULTS), the one
# place; the environment overrides these (MOOKTI_INDEXER_<NAME>).
_INDEXER_ENV = {
    "BATCH_SIZE": env.int,
    "BATCH_WAIT_MS": env.int,
    "MAX_ATTEMPTS": env.int,
    "CLAIM_IDLE_MS": env.int,
    "LEASE_MS": env.int,
    "MAINTAIN_SECONDS": env.float,
}
MOOKTI_INDEXER = {
    name: read(f"MOOKTI_INDEXER_{name}") for name, read in _INDEXER_ENV.items() if env.str(f"MOOKTI_INDEXER_{name}", "")
}
