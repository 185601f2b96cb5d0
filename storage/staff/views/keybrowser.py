"""The raw key browser: SCAN a pattern with a cursor, see type, TTL and memory, view any value.

The admin's own maintenance module: with the operations page, the only admin code that calls the
Redis client directly.

By nature this is the one admin page that works on key names it did not build: staff type a
glob pattern, which is always put behind this deployment's prefix, and a key to view or delete
must carry that prefix. Values are read with a bytes client (pickled cache entries are not
UTF-8) and every read is bounded (one page of members, a capped string).
Deleting a key is off unless ``MOOKTI_ADMIN_ALLOW_KEY_DELETE`` is set, as in dj-redis-panel.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import urlencode

from mookti import events
from mookti import keys as mookti_keys
from mookti.redis import get_redis, glob_escape, is_cluster
from storage.staff.audit import audit
from storage.staff.views.common import (
    BadInput,
    Refused,
    choice_param,
    confirm_page,
    confirmed,
    done,
    int_param,
    render,
)

KEY_TYPES = ("string", "hash", "list", "set", "zset", "stream")
PAGE_SIZE = 100
SCAN_COUNT = 500
MAX_SCAN_CALLS = 40
MAX_PATTERN = 200
MAX_KEY = 1024
STRING_PREVIEW = 64 * 1024
MEMBERS_PER_PAGE = 100
ENTITY_LINK = re.compile(r"^(user|chat|document):\{([A-Za-z0-9][A-Za-z0-9_.\-]{0,99})\}")
# Django password hashes (``<algorithm>$...``) and bare bcrypt ones (``$2b$...``, as ai-chatbot keeps them).
PASSWORD_HASH = re.compile(
    r"^(?:(pbkdf2_sha256|pbkdf2_sha1|argon2|bcrypt_sha256|bcrypt|scrypt|md5|sha1)\$|\$2[abxy]\$)"
)
ENTITY_PAGES = {"user": "admin:mookti_user", "chat": "admin:mookti_chat", "document": "admin:mookti_document"}


def deletion_allowed() -> bool:
    return bool(getattr(settings, "MOOKTI_ADMIN_ALLOW_KEY_DELETE", False))


def prefix() -> str:
    return settings.MOOKTI_REDIS_PREFIX


def text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def masked(text: str) -> str | None:
    """A password hash with its secret part hidden (``pbkdf2_sha256$********``, as Django's admin
    hides it); None when ``text`` is not one."""
    match = PASSWORD_HASH.match(text)
    return f"{match.group(1) or 'bcrypt'}$" + "*" * 8 + " (secret hidden)" if match else None


def show(value: bytes | str | None) -> dict[str, Any]:
    """A value for display: text (pretty JSON when it parses) or an escaped form of binary data;
    password hashes are masked."""
    if value is None:
        return {"text": "", "binary": False, "json": False}
    raw = value if isinstance(value, bytes) else value.encode()
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"text": repr(raw)[2:-1], "binary": True, "json": False}
    secret = masked(decoded)
    if secret is not None:
        return {"text": secret, "binary": False, "json": False, "masked": True}
    if decoded[:1] in ("{", "[") and len(decoded) < STRING_PREVIEW:
        try:
            return {
                "text": json.dumps(json.loads(decoded), indent=2, ensure_ascii=False),
                "binary": False,
                "json": True,
            }
        except ValueError:
            pass
    return {"text": decoded, "binary": False, "json": False}


def key_param(request: HttpRequest) -> str:
    source = request.POST if request.method == "POST" else request.GET
    name = source.get("key", "")
    if not name:
        raise BadInput("key: give the full key name.")
    if len(name) > MAX_KEY:
        raise BadInput(f"key: longer than {MAX_KEY} characters.")
    if not name.startswith(prefix()):
        raise BadInput(f"key: only keys of this deployment (prefix “{prefix()}”) can be browsed.")
    return name


def entity_link(name: str, site) -> str | None:
    """The entity page a key belongs to (``user:{id}...`` -> that user's page), if any."""
    match = ENTITY_LINK.match(name[len(prefix()) :])
    if not match:
        return None
    return reverse(ENTITY_PAGES[match.group(1)], args=[match.group(2)], current_app=site.name)


def scan_page(pattern: str, cursor: int, key_type: str | None) -> tuple[list[str], int]:
    """At least one page of key names (or the end of the keyspace), and the cursor to go on from."""
    client = get_redis(raw=True)
    match = glob_escape(prefix()) + pattern
    found: list[str] = []
    for _ in range(MAX_SCAN_CALLS):
        if is_cluster():  # one SCAN per primary; the cursor is not resumable across nodes
            found = [text(k) for k in client.scan_iter(match=match, count=SCAN_COUNT, _type=key_type)][: PAGE_SIZE * 10]
            return sorted(found), 0
        cursor, names = client.scan(cursor=cursor, match=match, count=SCAN_COUNT, _type=key_type)
        found.extend(text(n) for n in names)
        if cursor == 0 or len(found) >= PAGE_SIZE:
            break
    return sorted(set(found)), int(cursor)


def key_metadata(names: list[str]) -> list[dict[str, Any]]:
    """TYPE, PTTL and MEMORY USAGE of every key of the page in one round trip."""
    if not names:
        return []
    pipe = get_redis(raw=True).pipeline(transaction=False)
    for name in names:
        pipe.type(name)
        pipe.pttl(name)
        pipe.memory_usage(name, samples=5)
    replies = pipe.execute(raise_on_error=False)
    rows = []
    for index, name in enumerate(names):
        kind, pttl, memory = replies[index * 3 : index * 3 + 3]
        rows.append(
            {
                "name": name,
                "short": name[len(prefix()) :],
                "type": text(kind) if not isinstance(kind, Exception) else "?",
                "ttl": ttl_text(pttl),
                "memory": memory if isinstance(memory, int) else None,
            }
        )
    return rows


def ttl_text(pttl: Any) -> str:
    if not isinstance(pttl, int) or pttl == -2:
        return "gone"
    if pttl == -1:
        return "no expiry"
    seconds = pttl // 1000
    if seconds >= 86400:
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds}s" if seconds else f"{pttl}ms"


def key_list(request: HttpRequest, site) -> HttpResponse:
    pattern = request.GET.get("pattern", "").strip() or "*"
    if len(pattern) > MAX_PATTERN:
        raise BadInput(f"pattern: longer than {MAX_PATTERN} characters.")
    key_type = choice_param(request.GET.get("type"), "type", KEY_TYPES)
    cursor = int_param(request, "cursor", 0, 0, 2**64 - 1)
    names, next_cursor = scan_page(pattern, cursor, key_type)
    rows = key_metadata(names)
    for row in rows:
        row["url"] = view_url(site, row["name"])
    query = {"pattern": pattern, **({"type": key_type} if key_type else {})}
    context = {
        "title": "Raw keys",
        "prefix": prefix(),
        "pattern": pattern,
        "key_type": key_type or "",
        "key_types": KEY_TYPES,
        "rows": rows,
        "cursor": cursor,
        "next_url": f"?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None,
        "restart_url": f"?{urlencode(query)}" if cursor else None,
        "deletion_allowed": deletion_allowed(),
    }
    return render(request, site, "admin/mookti/key_list.html", context)


def view_url(site, name: str) -> str:
    return reverse("admin:mookti_key", current_app=site.name) + "?" + urlencode({"key": name})


def read_value(name: str, kind: str, offset: int) -> dict[str, Any]:
    """One bounded page of the value: members ``offset..offset+100`` (or a stream's newest entries)."""
    client = get_redis(raw=True)
    end = offset + MEMBERS_PER_PAGE - 1
    if kind == "string":
        length = client.strlen(name)
        return {
            "length": length,
            "string": show(client.getrange(name, 0, STRING_PREVIEW - 1)),
            "truncated": length > STRING_PREVIEW,
        }
    if kind == "hash":
        length = client.hlen(name)
        cursor, fields = 0, {}
        for _ in range(offset // MEMBERS_PER_PAGE + 1):  # HSCAN pages; small hashes come whole
            cursor, fields = client.hscan(name, cursor=cursor, count=MEMBERS_PER_PAGE)
            if cursor == 0:
                break
        items = [(text(k), show(v)) for k, v in sorted(fields.items())]
        return {"length": length, "pairs": items, "more": cursor != 0}
    if kind == "list":
        length = client.llen(name)
        return {
            "length": length,
            "members": [(offset + i, show(v)) for i, v in enumerate(client.lrange(name, offset, end))],
            "more": end + 1 < length,
        }
    if kind == "set":
        length = client.scard(name)
        members = sorted(client.srandmember(name, MEMBERS_PER_PAGE) or [])
        return {
            "length": length,
            "members": [("", show(v)) for v in members],
            "more": length > MEMBERS_PER_PAGE,
            "sampled": length > MEMBERS_PER_PAGE,
        }
    if kind == "zset":
        length = client.zcard(name)
        members = client.zrange(name, offset, end, withscores=True)
        return {"length": length, "scored": [(score, show(v)) for v, score in members], "more": end + 1 < length}
    if kind == "stream":
        length = client.xlen(name)
        entries = client.xrevrange(name, count=MEMBERS_PER_PAGE)
        rows = [(text(eid), entry_fields(name, fields)) for eid, fields in entries]
        return {"length": length, "entries": rows, "more": length > MEMBERS_PER_PAGE}
    return {"length": None}


def entry_fields(name: str, fields: dict[bytes, bytes]) -> list[tuple[str, dict[str, Any]]]:
    """A stream entry's fields for display; a user's event stream shows each event's type and JSON
    data (what clients receive) rather than its packed stored form."""
    event = events.decode(fields) if mookti_keys.is_events(name) else None
    if event is None:
        return [(text(k), show(v)) for k, v in fields.items()]
    return [("type", show(event[0])), ("data", show(event[1]))]


def key_detail(request: HttpRequest, site) -> HttpResponse:
    name = key_param(request)
    offset = int_param(request, "offset", 0, 0, 10**9)
    client = get_redis(raw=True)
    pipe = client.pipeline(transaction=False)
    pipe.type(name)
    pipe.pttl(name)
    pipe.memory_usage(name, samples=5)
    pipe.object("encoding", name)
    kind, pttl, memory, encoding = pipe.execute(raise_on_error=False)
    kind = text(kind)
    if kind == "none":
        return render(
            request,
            site,
            "admin/mookti/error.html",
            {"title": "Key not found", "message": f"No key named “{name}” (it may have expired or been deleted)."},
            status=404,
        )
    value = read_value(name, kind, offset)
    context = {
        "title": name[len(prefix()) :],
        "name": name,
        "kind": kind,
        "ttl": ttl_text(pttl),
        "memory": memory if isinstance(memory, int) else None,
        "encoding": text(encoding) if not isinstance(encoding, Exception) else "",
        "value": value,
        "offset": offset,
        "next_url": view_url(site, name) + f"&offset={offset + MEMBERS_PER_PAGE}"
        if value.get("more") and kind in ("list", "zset", "hash")
        else None,
        "entity_url": entity_link(name, site),
        "deletion_allowed": deletion_allowed(),
        "delete_url": reverse("admin:mookti_key_delete", current_app=site.name) + "?" + urlencode({"key": name}),
        "list_url": reverse("admin:mookti_keys", current_app=site.name),
    }
    return render(request, site, "admin/mookti/key_detail.html", context)


def key_delete(request: HttpRequest, site) -> HttpResponse:
    if not deletion_allowed():
        raise Refused("Deleting raw keys is switched off (set MOOKTI_ADMIN_ALLOW_KEY_DELETE=true to allow it).")
    name = key_param(request)
    client = get_redis(raw=True)
    kind = text(client.type(name))
    if kind == "none":
        raise BadInput(f"No key named “{name}”.")
    if confirmed(request):
        client.unlink(name)
        audit(request, "key.delete", name, f"raw {kind} key", deletion=True)
        return done(request, f"Deleted the key {name}.", reverse("admin:mookti_keys", current_app=site.name))
    return confirm_page(
        request,
        site,
        title="Delete key",
        question=f"Delete the raw key “{name}”?",
        facts=[("Key", name), ("Type", kind)],
        consequences=[
            "The key is removed as is: indexes and other keys that refer to it are not updated.",
            "Prefer the entity actions (delete chat, delete user), which keep everything consistent.",
        ],
        hidden={"key": name},
        cancel=view_url(site, name),
        danger=True,
    )
