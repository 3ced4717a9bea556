"""List, then watch, one Kubernetes collection: the running agent's live copy of it.

An `Informer` (client-go's name for the same loop) keeps the objects of one collection (pods,
namespaces) in memory and calls `on_change` after every change, so the agent reconciles within
moments of a relabel instead of at its next interval:

1. list the collection (`resourceVersion=0`: the API server answers from its watch cache);
2. watch from the list's resourceVersion (`watch=1&allowWatchBookmarks=true`) and apply each
   ADDED, MODIFIED and DELETED event to the copy; BOOKMARK events only move the version;
3. the watch ends by itself after `resync` seconds (`timeoutSeconds`), or with an ERROR event
   of code 410 (Expired: the version fell out of the server's history); either way the loop
   lists again, so a periodic resync repairs anything a lost event would have left wrong;
4. a failed list or watch (another error event, a line that is no watch event, a connection
   error) is retried after `retry` seconds, doubling up to `MAX_RETRY`, and reported in
   `error` until a list succeeds; the copy keeps its last contents meanwhile, so an API outage
   never empties a set.

The copy is read with `snapshot()`: (revision, objects), where the revision grows with every
change applied, so a reader recomputes only when it moved.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from calicc.agent.cni.errors import CniError
from calicc.agent.cni.kube import api_get, open_stream

log = logging.getLogger("calicc.agent")
RESYNC = 300.0  # seconds between full lists (each watch asks the server to end after this)
RETRY = 0.5
MAX_RETRY = 30.0
READ_SLACK = 30.0  # a watch read blocks at most resync + this (a silent, dead connection)
Key = tuple[str, str]
EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


def object_key(obj: dict[str, Any]) -> Key:
    """Return (namespace, name) of an API object (namespace "" for cluster-scoped ones)."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


class Informer:
    """One collection (`path`, e.g. /api/v1/pods, with `query` selectors), listed and watched."""

    def __init__(  # noqa: PLR0917 - the informer's whole configuration
        self,
        kubeconfig: Path,
        path: str,
        query: str,
        on_change: Callable[[], None],
        resync: float = RESYNC,
        retry: float = RETRY,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.path = path
        self.query = query
        self.on_change = on_change
        self.resync = resync
        self.retry = retry
        self.version = ""
        self.revision = 0
        self.error: str | None = None
        self.synced = threading.Event()
        self.lists = 0  # completed lists (the first one and every resync)
        self._objects: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start listing and watching in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=f"watch {self.path}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the watch (a blocked read returns at once) and wait for the thread."""
        self._stop.set()
        with self._lock:
            conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """Return the revision and the current objects (sorted by namespace and name)."""
        with self._lock:
            return self.revision, [self._objects[k] for k in sorted(self._objects)]

    def _run(self) -> None:
        delay = self.retry
        while not self._stop.is_set():
            try:
                self._list()
                started = time.monotonic()
                ended = self._watch()
                if ended == "refused":
                    raise ValueError("the watch ended with an error event or a non-event")
                delay = self.retry
                if time.monotonic() - started < self.retry:  # never a tight list loop
                    self._stop.wait(self.retry)
            except (CniError, OSError, ValueError, http.client.HTTPException) as exc:
                message = exc.msg if isinstance(exc, CniError) else f"{type(exc).__name__}: {exc}"
                if message != self.error:
                    log.warning("Kubernetes API: %s: %s (retrying)", self.path, message)
                self.error = message
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_RETRY)

    def _list(self) -> None:
        body = api_get(self.kubeconfig, f"{self.path}?resourceVersion=0{self.query}")
        objects = {object_key(o): o for o in body.get("items") or [] if isinstance(o, dict)}
        with self._lock:
            changed = objects != self._objects
            if changed:
                self._objects = objects
                self.revision += 1
            self.version = _version(body)
            self.lists += 1
        self.error = None
        self.synced.set()
        if changed:
            self.on_change()

    def _watch(self) -> str:
        """Follow the watch and return why it ended.

        "timeout" (the server ended it), "expired" (410: the version left the server's
        history), "refused" (another error event, or a line that is no watch event), "stopped".
        """
        query = (
            f"?watch=1&allowWatchBookmarks=true&resourceVersion={quote(self.version, safe='')}"
            f"&timeoutSeconds={int(self.resync)}{self.query}"
        )
        conn, response = open_stream(self.kubeconfig, self.path + query, self.resync + READ_SLACK)
        with self._lock:
            self._conn = conn
        try:
            for line in response:
                if self._stop.is_set():
                    return "stopped"
                ended = self._event(json.loads(line))
                if ended is not None:
                    return ended
            return "stopped" if self._stop.is_set() else "timeout"
        finally:
            with self._lock:
                self._conn = None
            conn.close()

    def _event(self, event: dict[str, Any]) -> str | None:
        """Apply one watch event; return why the watch must end (then list again), or None."""
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR" and isinstance(obj, dict) and obj.get("code") == HTTPStatus.GONE:
            return "expired"
        if kind not in EVENT_TYPES or not isinstance(obj, dict):
            return "refused"
        with self._lock:
            self.version = _version(obj) or self.version
            if kind == "BOOKMARK":
                return None
            if kind == "DELETED":
                self._objects.pop(object_key(obj), None)
            else:
                self._objects[object_key(obj)] = obj
            self.revision += 1
        self.on_change()
        return None
