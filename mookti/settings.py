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

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # /static/ (admin, API docs) in every mode
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "mookti.api.idempotency.idempotency_middleware",
]

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
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["mookti.api.parsers.StrictJSONParser", "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
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
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mookti.api.idempotency.declare_header",
    ],
    "ENUM_NAME_OVERRIDES": {
        "UserTypeEnum": "storage.managers.users.USER_TYPES",
        "VoteTypeEnum": ["up", "down"],
    },
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

# --- Live updates --------------------------------------------------------------------------
MOOKTI_EVENTS_MAXLEN = env.int("MOOKTI_EVENTS_MAXLEN", default=1000)
# Events older than this are trimmed from the replay stream; an idle stream expires after it.
MOOKTI_EVENTS_RETENTION = env.int("MOOKTI_EVENTS_RETENTION", default=7 * 24 * 3600)
# Seconds between websocket heartbeats; each one also re-checks the token and the stream.
MOOKTI_WS_HEARTBEAT = env.float("MOOKTI_WS_HEARTBEAT", default=20.0)
# Lifetime of a single-use websocket ticket (at most 60 s).
MOOKTI_WS_TICKET_TTL = min(env.int("MOOKTI_WS_TICKET_TTL", default=30), 60)
# Live events buffered per socket before it falls back to reading the stream.
MOOKTI_WS_QUEUE = env.int("MOOKTI_WS_QUEUE", default=256)

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

# --- Semantic search (README "Semantic search") ----------------------------------------------
# Backends are chosen like CACHES: a dotted path and its OPTIONS. Defaults follow the environment:
# OPENAI_API_KEY -> OpenAI embeddings (OPENAI_BASE_URL for any compatible server), PINECONE_API_KEY
# + PINECONE_INDEX_HOST -> Pinecone; otherwise the embedded local model and LanceDB under DATA_DIR.
# MOOKTI_EMBEDDINGS_BACKEND=local|openai and MOOKTI_VECTOR_BACKEND=lancedb|pinecone force a choice.
_embeddings_choice = env.str(
    "MOOKTI_EMBEDDINGS_BACKEND", default="openai" if env.str("OPENAI_API_KEY", default="") else "local"
)
if _embeddings_choice == "openai":
    MOOKTI_EMBEDDINGS = {
        "BACKEND": "storage.search.embeddings.openai.OpenAIEmbeddings",
        "OPTIONS": {
            "model": env.str("OPENAI_EMBEDDING_MODEL", default="text-embedding-3-small"),
            "dimensions": env.int("OPENAI_EMBEDDING_DIMENSIONS", default=0) or None,
            "encoding_format": env.str("OPENAI_EMBEDDING_ENCODING", default="float"),
        },
    }
else:
    MOOKTI_EMBEDDINGS = {"BACKEND": "storage.search.embeddings.local.SentenceTransformerEmbeddings", "OPTIONS": {}}
_vector_choice = env.str(
    "MOOKTI_VECTOR_BACKEND",
    default="pinecone"
    if env.str("PINECONE_API_KEY", default="") and env.str("PINECONE_INDEX_HOST", default="")
    else "lancedb",
)
if _vector_choice == "pinecone":
    MOOKTI_VECTOR_STORE = {
        "BACKEND": "storage.search.vectors.pinecone.PineconeVectorStore",
        "OPTIONS": {"host": env.str("PINECONE_INDEX_HOST", default="")},
    }
else:
    MOOKTI_VECTOR_STORE = {
        "BACKEND": "storage.search.vectors.lancedb.LanceDBVectorStore",
        "OPTIONS": {"path": env.str("MOOKTI_LANCEDB_PATH", default=str(DATA_DIR / "lancedb"))},
    }
MOOKTI_SEARCH = {
    # Pinecone namespace (LanceDB table) of a user's records.
    "USER_NAMESPACE": env.str("MOOKTI_SEARCH_USER_NAMESPACE", default="user-{userId}"),
    # Shared learning-content namespaces (read-only here; they exist in production's index).
    "LEARNING_NAMESPACES": env.list("MOOKTI_SEARCH_LEARNING_NAMESPACES", default=[]),
    "QUERY_CACHE_TTL": env.int("MOOKTI_SEARCH_QUERY_CACHE_TTL", default=7 * 24 * 3600),
    "CHUNK_CHARS": env.int("MOOKTI_SEARCH_CHUNK_CHARS", default=1000),
    "CHUNK_OVERLAP": env.int("MOOKTI_SEARCH_CHUNK_OVERLAP", default=150),
    # Hits below this cosine similarity are not returned (unrelated text scores about 0 with MiniLM).
    "MIN_SCORE": env.float("MOOKTI_SEARCH_MIN_SCORE", default=0.0),
}
# Outbox indexer (storage/indexer.py has every knob and its default).
MOOKTI_INDEXER = {
    "BATCH_SIZE": env.int("MOOKTI_INDEXER_BATCH_SIZE", default=256),
    "BATCH_WAIT_MS": env.int("MOOKTI_INDEXER_BATCH_WAIT_MS", default=200),
    "MAX_ATTEMPTS": env.int("MOOKTI_INDEXER_MAX_ATTEMPTS", default=5),
    "CLAIM_IDLE_MS": env.int("MOOKTI_INDEXER_CLAIM_IDLE_MS", default=60_000),
    "LEASE_MS": env.int("MOOKTI_INDEXER_LEASE_MS", default=60_000),
    "MAINTAIN_SECONDS": env.float("MOOKTI_INDEXER_MAINTAIN_SECONDS", default=30.0),
}
