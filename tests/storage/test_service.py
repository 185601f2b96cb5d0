"""Health, schema and docs."""

from django.test import override_settings

from mookti.redis import close_clients


def test_health_reports_redis(anon):
    r = anon.get("/api/health/")
    assert r.status_code == 200
    assert r.json()["checks"]["redis"]["ok"] is True


def test_health_is_503_when_redis_is_down(anon):
    try:
        with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
            close_clients()
            r = anon.get("/api/health/")
            assert r.status_code == 503
            assert r.json()["checks"]["redis"]["ok"] is False
    finally:
        close_clients()


def test_api_is_503_not_500_when_redis_is_down(alice):
    try:
        with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
            close_clients()
            r = alice["api"].get("/api/storage/chat")
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "unavailable:database"
    finally:
        close_clients()


def test_openapi_schema_and_docs(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/storage/chat", "/api/storage/message", "/api/storage/user", "/api/storage/document"):
        assert any(p.rstrip("/") == path for p in paths), path
    docs = anon.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
