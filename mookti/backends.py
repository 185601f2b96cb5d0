"""Pluggable search backends (embeddings, vector stores): loading from settings, and their errors.

Settings name a backend the Django way: an alias the backend family registers (``"lancedb"``,
``"openai"``), a dotted path to any class of that family (``"myapp.vectors.QdrantStore"``), or the
``CACHES``-like dict ``{"BACKEND": alias-or-path, "OPTIONS": {...}}``. A family (a base class)
lists its aliases in ``aliases``; a backend's options default to its own environment variables, so
adding one never touches the settings module. Each process builds one instance per setting, lazily
(never at import or fork time), and drops it when the setting changes (tests override settings).

Errors are split by what the caller should do about them:
:class:`BackendUnavailable` is an outage (connection refused, timeout, 429, 5xx): retry later and
tell API callers 503. :class:`BackendRejected` means this input will never work (a 400 from the
server, a record it refuses): the indexer parks the entry as a dead letter after a few tries.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

T = TypeVar("T")


class BackendError(Exception):
    """A search backend failed; ``str(exc)`` is safe to show to an API caller."""


class BackendUnavailable(BackendError):
    """The service is down or throttling: worth retrying later."""


class BackendRejected(BackendError):
    """The service refused this input: retrying the same input will not help."""


class IndexMismatch(BackendError):
    """The vector index was built with another embedding model or dimension."""


class PerProcess(Generic[T]):
    """A value built on first use in each process: clients, connections and models must not cross
    a fork (web servers fork their workers after importing the app)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = 0
        self._value: T | None = None

    def get(self) -> T:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._value = self._factory()
                    self._pid = os.getpid()
        return self._value  # type: ignore[return-value]


class BackendRegistry:
    """One lazily built backend per settings name and process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: dict[str, tuple[int, Any]] = {}
        setting_changed.connect(self._on_setting_changed, weak=False)

    def get(self, setting_name: str, base: type[T], default: Callable[[], Any] | None = None) -> T:
        cached = self._instances.get(setting_name)
        if cached is not None and cached[0] == os.getpid():
            return cached[1]
        with self._lock:
            cached = self._instances.get(setting_name)
            if cached is None or cached[0] != os.getpid():
                cached = (os.getpid(), build_backend(setting_name, base, default))
                self._instances[setting_name] = cached
        return cached[1]

    def reset(self, setting_name: str | None = None) -> None:
        with self._lock:
            if setting_name is None:
                self._instances.clear()
            else:
                self._instances.pop(setting_name, None)

    def _on_setting_changed(self, setting: str, **kwargs: Any) -> None:
        if setting in self._instances or setting.startswith("MOOKTI_"):
            self.reset(setting)


def backend_config(setting_name: str, value: Any, base: type) -> tuple[str, dict[str, Any]]:
    """``(dotted path, options)`` of a setting: an alias, a dotted path, or ``{"BACKEND", "OPTIONS"}``."""
    if isinstance(value, str):
        value = {"BACKEND": value}
    if not isinstance(value, dict) or not isinstance(value.get("BACKEND"), str) or not value["BACKEND"]:
        raise ImproperlyConfigured(
            f'{setting_name} must be an alias, a dotted path, or a dict with "BACKEND" and "OPTIONS".'
        )
    aliases: dict[str, str] = getattr(base, "aliases", {})
    name = value["BACKEND"]
    if name in aliases:
        return aliases[name], dict(value.get("OPTIONS") or {})
    if "." not in name:
        known = ", ".join(sorted(aliases)) or "none"
        raise ImproperlyConfigured(f"{setting_name}: unknown backend {name!r} (aliases: {known}; or a dotted path).")
    return name, dict(value.get("OPTIONS") or {})


def build_backend(setting_name: str, base: type[T], default: Callable[[], Any] | None = None) -> T:
    value = getattr(settings, setting_name, None) or (default() if default else None)
    path, options = backend_config(setting_name, value, base)
    try:
        backend_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{setting_name}: cannot import {path!r}: {exc}") from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, base)):
        raise ImproperlyConfigured(f"{setting_name}: {path} is not a {base.__name__}.")
    try:
        return backend_class(**options)
    except TypeError as exc:
        raise ImproperlyConfigured(f"{setting_name}: bad OPTIONS for {path}: {exc}") from exc


registry = BackendRegistry()
