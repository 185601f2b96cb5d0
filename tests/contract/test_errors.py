"""The one JSON error body for every /api/ path (unknown routes, any Accept header, refused
methods), JSON by default for /api/schema/, RFC 3339 timestamps in responses."""

from __future__ import annotations

import re

import pytest
from django.test import Client

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ACCEPTS = ["application/json", "text/html", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", "image/png", "*/*"]


def assert_error_body(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "fields"} and error["code"] and error["message"], error
    return error


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("path", ["/api/nope", "/api/storage/nope/", "/api/storage/chat/a/b/c/", "/api/"])
def test_unknown_routes_answer_the_json_error(path: str, accept: str) -> None:
    error = assert_error_body(Client().get(path, HTTP_ACCEPT=accept), 404)
    assert error["code"] == "not_found:api"


@pytest.mark.parametrize("accept", ACCEPTS)
def test_api_views_answer_json_whatever_accept_says(accept: str) -> None:
    # no browsable API: a refused call is the JSON error, not an HTML page
    error = assert_error_body(Client().get("/api/storage/chat/", HTTP_ACCEPT=accept), 401)
    assert error["code"] == "unauthorized:auth"


def test_a_refused_method_is_the_json_error_with_allow() -> None:
    response = Client().post("/api/health/", HTTP_ACCEPT="text/html")
    assert_error_body(response, 405)
    assert "GET" in response["Allow"]


def test_multipart_is_refused_where_only_json_is_meant(make_user) -> None:
    user = make_user()
    response = Client().post(
        "/api/storage/chat/", {"title": "x"}, HTTP_AUTHORIZATION=f"Bearer {user['token']}"
    )  # the test client's default body is multipart
    assert_error_body(response, 415)


def test_schema_defaults_to_json_and_yaml_on_request() -> None:
    response = Client().get("/api/schema/", HTTP_ACCEPT="*/*")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert response.json()["openapi"].startswith("3.")
    yaml = Client().get("/api/schema/?format=yaml")
    assert yaml.status_code == 200 and yaml.content.startswith(b"openapi:")


def test_response_timestamps_are_rfc3339_with_four_digit_years(make_user) -> None:
    user = make_user()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {user['token']}")
    for created in ("1700-01-02T03:04:05Z", "2025-03-01T12:00:00.123456+02:00", 1_000):
        response = client.post("/api/storage/chat/", {"createdAt": created}, content_type="application/json")
        assert response.status_code == 201, response.content
        assert RFC3339_MS.match(response.json()["createdAt"]), response.json()
    assert client.get("/api/storage/chat/").json()["chats"][-1]["createdAt"] == "1700-01-02T03:04:05.000Z"
