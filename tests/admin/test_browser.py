"""The admin in a real browser: Debian's headless Chromium driven by Playwright against a live server.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and the ``playwright`` Python package;
never ``playwright install``. Screenshots of the main pages go to ``test-artifacts/screenshots/``.
The last tests run ``manage.py serve`` with ``DJANGO_DEBUG=0`` and check that the API docs and the
admin are styled with assets served by the app itself (no CDN).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, expect, sync_playwright

from storage.managers import chats
from tests.admin.conftest import drain_indexer

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("MOOKTI_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
STAFF_PASSWORD = "staff-pass-123"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}: apt-get install -y chromium"
    # Playwright's sync API runs an event loop in this thread; the test body still uses the ORM.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def staff_page(browser: Browser, live_server, django_user_model) -> Iterator[Page]:
    """A browser page logged in to the admin through its login form as a (non-superuser) staff member."""
    django_user_model.objects.create_user("browser-staff", "staff@example.com", STAFF_PASSWORD, is_staff=True)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "browser-staff")
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("Mookti administration")
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_staff_opens_a_user_and_their_chat(staff_page: Page, learner) -> None:
    page = staff_page
    section = page.locator(".app-mookti")
    expect(section).to_contain_text("Mookti data")
    shot(page, "01-admin-index")

    section.get_by_role("link", name="Users").click()
    page.fill("#searchbar", learner["email"])
    page.press("#searchbar", "Enter")
    expect(page.locator("#result_list")).to_contain_text(learner["email"])
    shot(page, "02-users")

    page.get_by_role("link", name=learner["email"]).click()
    expect(page.locator("#profile")).to_contain_text("Lena Learner")
    expect(page.locator("#user-type")).to_have_text("basic")
    expect(page.locator("#documents")).to_contain_text("Essay v2")
    shot(page, "03-user")

    page.locator("#chats").get_by_role("link", name="Photosynthesis basics").click()
    transcript = page.locator("#transcript")
    expect(transcript.locator(".message")).to_have_count(2)
    expect(transcript.locator(".role-user")).to_contain_text("How do plants make food?")
    assistant = transcript.locator(".role-assistant")
    expect(assistant).to_contain_text("Plants use sunlight, water and carbon dioxide.")
    expect(assistant.locator(".pill.up")).to_be_visible()
    assistant.locator("summary", has_text="getWeather").click()
    expect(assistant.locator(".part-tool pre").first).to_contain_text('"city": "Pune"')
    expect(assistant.get_by_role("link", name="evil.html")).to_have_count(0)
    shot(page, "04-chat")

    page.locator("#owner-link").click()
    page.locator("#documents").get_by_role("link", name="Essay v2").click()
    expect(page.locator(".version")).to_have_count(2)
    expect(page.locator(".suggestions")).to_contain_text("need")
    shot(page, "05-document")


def test_staff_deletes_a_chat_through_its_confirmation_page(staff_page: Page, learner) -> None:
    page = staff_page
    chat_id = learner["chat"]["id"]
    page.goto(f"/admin/mookti/chats/{chat_id}/")
    page.locator("#delete-chat-link").click()
    expect(page.locator("#question")).to_contain_text("Photosynthesis basics")
    shot(page, "06-delete-chat-confirmation")
    page.locator("#confirm-button").click()
    expect(page).to_have_url(re.compile(rf"/admin/mookti/users/{learner['id']}/$"))
    expect(page.locator(".messagelist")).to_contain_text("Deleted the chat")
    expect(page.locator("#chats")).to_contain_text("No chats.")
    assert chats.get(chat_id) is None


def test_operations_and_raw_keys_pages(staff_page: Page, learner) -> None:
    page = staff_page
    page.goto("/admin/mookti/operations/")
    expect(page.locator("#redis-info")).to_contain_text("Ops/s")
    expect(page.locator("#keyspace")).to_contain_text("chat:{*}:message-data")
    shot(page, "07-operations")
    page.locator("#keyspace").get_by_role("link", name="user:{*}", exact=True).click()
    expect(page.locator("#result_list")).to_contain_text(f"user:{{{learner['id']}}}")
    shot(page, "08-raw-keys")
    page.locator("#result_list").get_by_role("link", name=f"user:{{{learner['id']}}}", exact=True).click()
    expect(page.locator("#key-type")).to_contain_text("hash")
    expect(page.locator("#value")).to_contain_text(learner["email"])
    shot(page, "09-raw-key")
    page.locator("#entity-link").click()
    expect(page.locator("#profile")).to_contain_text(learner["email"])


def test_staff_runs_a_semantic_search_and_follows_a_result(staff_page: Page, search_backends, learner) -> None:
    assert drain_indexer()
    page = staff_page
    page.locator(".app-mookti").get_by_role("link", name="Semantic search").click()
    expect(page.locator("#backends")).to_contain_text("lancedb:")
    page.fill("#id_q", "how do plants make food from sunlight")
    page.fill("#id_user", learner["email"])
    page.locator("#search-button").click()
    results = page.locator("#results")
    expect(results.locator(".hit").first).to_contain_text("Photosynthesis basics")
    expect(results.locator(".hit .score").first).to_have_text(re.compile(r"^0\.\d{3}$"))
    shot(page, "10-semantic-search")
    results.locator(".hit-link").first.click()
    expect(page).to_have_url(re.compile(rf"/admin/mookti/chats/{learner['chat']['id']}/\?message="))
    focused = page.locator(".message.focus")
    expect(focused).to_have_count(1)
    expect(focused).to_contain_text("lants")
    shot(page, "11-search-result")


# --- production mode (DJANGO_DEBUG=0): static files collected by `serve`, served by whitenoise -----
ROOT = Path(settings.BASE_DIR)
PRODUCTION_STAFF = ("prod-staff", "prod-staff-pass-123")
MAKE_STAFF = """
import os, sys, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
get_user_model().objects.create_user(sys.argv[1], password=sys.argv[2], is_staff=True)
"""
START_DEADLINE = 240.0
RENDER_TIMEOUT = 60_000  # ms: the docs build the whole schema on first load


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def production_server(tmp_path_factory) -> Iterator[str]:
    """``manage.py serve --no-indexer`` with ``DJANGO_DEBUG=0`` on this run's Redis prefix: its base URL."""
    data_dir = tmp_path_factory.mktemp("production")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # plain HTTP on loopback: no TLS proxy in front, so no HTTPS redirect or HTTPS-only cookies
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "MOOKTI_DATA_DIR": str(data_dir),
        "REDIS_URL": settings.REDIS_URL,
        "MOOKTI_REDIS_PREFIX": settings.MOOKTI_REDIS_PREFIX,
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run([sys.executable, "-c", MAKE_STAFF, *PRODUCTION_STAFF], cwd=ROOT, env=env, check=True, timeout=300)
    log = open(data_dir / "serve.log", "w+")  # noqa: SIM115 - read after the process ends
    argv = [sys.executable, "manage.py", "serve", "--no-indexer", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not _answers(f"{base}/admin/login/"):
            assert process.poll() is None, f"serve exited: {(data_dir / 'serve.log').read_text()}"
            assert time.monotonic() < deadline, f"serve did not start: {(data_dir / 'serve.log').read_text()}"
            time.sleep(0.5)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def production_page(browser: Browser, production_server: str) -> Iterator[Page]:
    """A page on the production server in a browser without internet: every other host is refused."""
    context = browser.new_context(base_url=production_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    context.route(re.compile(rf"^(?!{re.escape(production_server)}/)"), lambda route: route.abort())
    page = context.new_page()
    yield page
    context.close()


def computed(page: Page, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"e => getComputedStyle(e).getPropertyValue('{prop}')")


def test_api_docs_render_offline_in_production_mode(production_page: Page) -> None:
    page = production_page
    page.goto("/api/docs/")
    operations = page.locator(".swagger-ui .opblock")
    expect(operations.first).to_be_visible(timeout=RENDER_TIMEOUT)
    assert operations.count() >= 10
    expect(page.locator(".opblock-summary-path", has_text="/api/storage/chat/").first).to_be_visible()
    # Swagger UI's own stylesheet is applied: GET operations have its blue border
    assert computed(page, ".swagger-ui .opblock.opblock-get", "border-top-color") == "rgb(97, 175, 254)"
    assert re.search(r"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui\.[0-9a-f]{12}\.css", page.content())
    shot(page, "12-api-docs-production")

    page.goto("/api/redoc/")
    expect(page.locator("[data-section-id*='operation/']").first).to_be_attached(timeout=RENDER_TIMEOUT)
    assert page.locator("[data-section-id*='operation/']").count() >= 10
    expect(page.locator(".menu-content")).to_be_visible()
    shot(page, "13-redoc-production")


def test_admin_is_styled_in_production_mode(production_page: Page, learner) -> None:
    page = production_page
    page.goto("/admin/login/?next=/admin/")
    # Django's admin CSS from STATIC_ROOT, under a content-hashed name
    assert computed(page, "#header", "background-color") == "rgb(65, 118, 144)"
    assert re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css", page.content())
    page.fill("#id_username", PRODUCTION_STAFF[0])
    page.fill("#id_password", PRODUCTION_STAFF[1])
    page.click("input[type=submit]")
    expect(page.locator(".app-mookti")).to_contain_text("Mookti data")
    shot(page, "14-admin-index-production")
    page.goto(f"/admin/mookti/users/{learner['id']}/")
    expect(page.locator("#profile")).to_contain_text("Lena Learner")
    assert computed(page, "#profile .facts th", "font-weight") == "600"  # storage/staff/static/mookti/admin.css
    shot(page, "15-admin-user-production")
