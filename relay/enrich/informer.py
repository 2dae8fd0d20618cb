"""List+watch cache of one resource, informer style, keeping slim projections only.

List in pages, then watch from the list's resourceVersion (with bookmarks, so a quiet
resource still advances it); on a watch that ends, watch again from the last version;
on 410 Gone, list again; on errors, back off with jitter; every `resync_seconds`, list
again anyway. Readers get a consistent dict: a relist swaps it in whole.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from kubensage_common.backoff import Backoff
from kubensage_common.logsetup import OnceLogger

logger = logging.getLogger(__name__)

T = TypeVar("T")
GONE = 410
PAGE_SIZE = 500
CONNECT_TIMEOUT = 5.0


class ResourceGoneError(Exception):
    """The watched resourceVersion is no longer available: list again."""


@dataclass
class InformerStats:
    lists: int = 0
    gone: int = 0
    errors: int = 0  # failed lists and broken watches


class Informer(Generic[T]):
    def __init__(
        self,
        resource: str,
        list_call: Callable[..., Any],
        project: Callable[[Mapping[str, Any]], T | None],
        key: Callable[[Mapping[str, Any]], str],
        *,
        watch_seconds: int = 240,
        resync_seconds: float = 3600.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.resource = resource
        self.list_call = list_call
        self.project = project
        self.key = key
        self.watch_seconds = watch_seconds
        self.resync_seconds = resync_seconds
        self.items: dict[str, T] = {}
        self.synced = threading.Event()
        self.stats = InformerStats()
        self._backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        self._once = OnceLogger(logger)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{resource}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._list()
                resync_at = time.monotonic() + self.resync_seconds
                while not self._stop.is_set() and time.monotonic() < resync_at:
                    version = self._watch_or_wait(version)
            except ResourceGoneError:
                self.stats.gone += 1
                logger.info("%s watch expired (410 Gone); listing again", self.resource)
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                self.stats.errors += 1
                self._once.problem(
                    f"kube:{self.resource}",
                    f"Kubernetes {self.resource} list/watch failed: {exc}; keeping the last "
                    "known state and retrying",
                )
                self._stop.wait(self._backoff.next_delay())

    def _list(self) -> str:
        fresh: dict[str, T] = {}
        token: str | None = None
        version = ""
        while True:
            response = self.list_call(
                limit=PAGE_SIZE,
                _continue=token,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, 60),
            )
            page = json.loads(response.data)
            for obj in page.get("items") or ():
                projected = self.project(obj)
                if projected is not None:
                    fresh[self.key(obj)] = projected
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion", ""))
            token = meta.get("continue") or None
            if token is None:
                break
        self.items = fresh
        self.stats.lists += 1
        self.synced.set()
        self._backoff.reset()
        return version

    def _events(self, version: str) -> Iterator[dict[str, Any]]:
        try:
            response = self.list_call(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_seconds,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, self.watch_seconds + 30),
            )
        except ApiException as exc:
            if exc.status == GONE:
                raise ResourceGoneError from exc
            raise
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    return
                if line and not line.isspace():
                    yield json.loads(line)
        finally:
            response.close()
            response.release_conn()

    def _watch_or_wait(self, version: str) -> str:
        """Watch; a broken connection is resumed from the same version after a backoff,
        which is far cheaper than listing everything again."""
        try:
            version = self._watch(version)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self.stats.errors += 1
            self._once.problem(
                f"kube:{self.resource}",
                f"Kubernetes {self.resource} watch broke: {exc}; keeping the last known "
                "state and resuming",
            )
            self._stop.wait(self._backoff.next_delay())
            return version
        self._once.clear(f"kube:{self.resource}")
        self._backoff.reset()
        return version

    def _watch(self, version: str) -> str:
        """Apply events until the server ends the watch; return the newest version seen."""
        for event in self._events(version):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == GONE:
                    raise ResourceGoneError
                raise ApiException(status=obj.get("code"), reason=obj.get("message"))
            version = str((obj.get("metadata") or {}).get("resourceVersion", version))
            if kind == "BOOKMARK":
                continue
            key = self.key(obj)
            projected = self.project(obj) if kind in ("ADDED", "MODIFIED") else None
            if projected is None:
                self.items.pop(key, None)
            else:
                self.items[key] = projected
        return version
