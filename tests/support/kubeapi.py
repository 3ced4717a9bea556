"""An in-process stub of the Kubernetes API for tests: namespaces, pods, Services and
EndpointSlices held in memory.

`KubeApi` serves what calicc's agent and CNI plugin read (agent/kube_endpoints.py,
agent/cni/kube.py) and what a watching client reads, over plain HTTP with a bearer token:

- GET /api/v1/pods, /api/v1/namespaces, /api/v1/namespaces/NS/pods, /api/v1/services,
  /apis/discovery.k8s.io/v1/endpointslices: lists whose
  `metadata.resourceVersion` is the store's version; `fieldSelector` (metadata.name,
  metadata.namespace, spec.nodeName, status.phase with =, == or !=) and `labelSelector`
  (k=v, k==v, k!=v, k, !k) filter them; any other field is a 400 Status, as the real API says;
- GET /api/v1/namespaces/NS/pods/NAME and /api/v1/namespaces/NS: the object, or a 404 Status;
- `?watch=1` (or `watch=true`, or the old /api/v1/watch/... paths) on a list: a chunked stream
  of JSON lines `{"type": ..., "object": ...}`. With `resourceVersion=N` every change after N
  (from the retained history), then the live ones; without it (or with 0) an ADDED event per
  current object first. A version older than the history gets one ERROR event with a Status of
  code 410, reason Expired ("too old resource version"), as the real API server sends it (HTTP
  200, the error inside the stream). `allowWatchBookmarks` adds BOOKMARK events (every
  `bookmark_interval` seconds and when the stream ends); `timeoutSeconds` ends the stream.

One version counter serves every kind, as etcd's revision does: each mutator (`put_namespace`,
`put_pod`, `label_pod`, `label_namespace`, `delete_pod`, `delete_namespace`, `put_service`,
`delete_service`, `put_endpoint_slice`, `delete_endpoint_slice`) bumps it once and
wakes the watchers. `fail(code)` makes every request fail with that status and ends open
watches (an outage); `fail(None)` ends it. `requests` logs every request's path and query.

`start(netns, host, port)` creates the listening socket inside a named network namespace (from
a thread that enters it and returns) and serves it from a thread of the root namespace: the
socket stays in the namespace it was created in, so the API is reachable only there.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.kubeapi_query import (
    KINDS,
    ApiError,
    Query,
    api_version,
    field_filter,
    label_filter,
    parse_path,
)

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
Port = tuple[str, int, str]  # a named container port: name, number, protocol


@dataclass(frozen=True)
class Event:
    """One change of the store: its version, the kind's plural, the event type and object."""

    version: int
    kind: str
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None  # the object before a MODIFIED event


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    """Return a deep copy of a JSON object (what a client gets never aliases the store)."""
    copied: dict[str, Any] = json.loads(json.dumps(obj))
    return copied


class KubeApi:
    """Namespaces and pods in memory, served as the Kubernetes API serves them (see module)."""

    def __init__(self, token: str = "test-token", history: int = 1000) -> None:
        self.token = token
        self.history = history
        self.bookmark_interval = 1.0
        self.requests: list[str] = []
        self.version = 1
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}  # EndpointSlices
        self.events: deque[Event] = deque(maxlen=history)
        self.compacted = 1  # history holds every change after this version
        self.failing: int | None = None
        self.cond = threading.Condition()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.stopping = False

    # ---- the store ----------------------------------------------------------------------

    def _record(
        self, kind: str, kind_type: str, obj: dict[str, Any], old: dict[str, Any] | None = None
    ) -> None:
        """Bump the version, stamp `obj` with it, keep the event and wake the watchers."""
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        if len(self.events) == self.events.maxlen:
            self.compacted = self.events[0].version
        self.events.append(Event(self.version, kind, kind_type, _copy(obj), old))
        self.cond.notify_all()

    def put_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create or replace namespace `name` (its kubernetes.io/metadata.name label included)."""
        with self.cond:
            labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
            old = self.namespaces.get(name)
            obj = {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {"name": name, "uid": f"ns-{name}", "labels": labels},
                "status": {"phase": "Active"},
            }
            self.namespaces[name] = obj
            self._record(
                "namespaces", "MODIFIED" if old else "ADDED", obj, _copy(old) if old else None
            )

    def put_pod(  # noqa: PLR0917 - put_pod(ns, name, labels, ip, node) reads as a pod
        self,
        namespace: str,
        name: str,
        labels: dict[str, str] | None = None,
        ip: str | None = None,
        node: str = "",
        ports: Iterable[Port] = (),
        phase: str = "Running",
    ) -> None:
        """Create or replace a pod: labels, address, node and named container ports."""
        with self.cond:
            old = self.pods.get((namespace, name))
            container_ports = [
                {"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports
            ]
            status: dict[str, Any] = {"phase": phase}
            if ip:
                status.update(podIP=ip, podIPs=[{"ip": ip}])
            obj = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": f"pod-{namespace}-{name}",
                    "labels": dict(labels or {}),
                },
                "spec": {"nodeName": node, "containers": [{"name": "c", "ports": container_ports}]},
                "status": status,
            }
            self.pods[(namespace, name)] = obj
            self._record("pods", "MODIFIED" if old else "ADDED", obj, _copy(old) if old else None)

    def label_pod(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        """Replace a pod's labels (a KeyError when there is no such pod)."""
        with self.cond:
            obj = self.pods[(namespace, name)]
            old = _copy(obj)
            obj["metadata"]["labels"] = dict(labels)
            self._record("pods", "MODIFIED", obj, old)

    def label_namespace(self, name: str, labels: dict[str, str]) -> None:
        """Replace a namespace's labels (its kubernetes.io/metadata.name label stays)."""
        with self.cond:
            obj = self.namespaces[name]
            old = _copy(obj)
            obj["metadata"]["labels"] = {"kubernetes.io/metadata.name": name, **labels}
            self._record("namespaces", "MODIFIED", obj, old)

    def delete_pod(self, namespace: str, name: str) -> None:
        """Remove a pod; its DELETED event carries its last state at the new version."""
        with self.cond:
            self._record("pods", "DELETED", self.pods.pop((namespace, name)))

    def delete_namespace(self, name: str) -> None:
        """Remove a namespace and its pods (each with its DELETED event)."""
        with self.cond:
            for key in [k for k in self.pods if k[0] == name]:
                self._record("pods", "DELETED", self.pods.pop(key))
            self._record("namespaces", "DELETED", self.namespaces.pop(name))

    def put_service(
        self,
        namespace: str,
        name: str,
        *,
        cluster_ips: Iterable[str] = (),
        external_ips: Iterable[str] = (),
        ingress_ips: Iterable[str] = (),
        kind: str = "ClusterIP",
        traffic_policy: str = "Cluster",
    ) -> None:
        """Create or replace a Service: cluster IPs, external IPs, LoadBalancer ingress IPs."""
        with self.cond:
            old = self.services.get((namespace, name))
            clusters = list(cluster_ips)
            families = sorted({"IPv6" if ":" in ip else "IPv4" for ip in clusters})
            spec: dict[str, Any] = {
                "type": kind,
                "clusterIP": clusters[0] if clusters else "None",
                "clusterIPs": clusters,
                "ipFamilies": families,
                "externalIPs": list(external_ips),
                "externalTrafficPolicy": traffic_policy,
            }
            ingress = [{"ip": ip} for ip in ingress_ips]
            obj = {
                "kind": "Service",
                "apiVersion": "v1",
                "metadata": {"name": name, "namespace": namespace, "uid": f"svc-{name}"},
                "spec": spec,
                "status": {"loadBalancer": {"ingress": ingress} if ingress else {}},
            }
            self.services[(namespace, name)] = obj
            self._record(
                "services", "MODIFIED" if old else "ADDED", obj, _copy(old) if old else None
            )

    def put_endpoint_slice(
        self,
        namespace: str,
        name: str,
        service: str,
        endpoints: Iterable[tuple[str, str, bool | None]],
        address_type: str = "IPv4",
    ) -> None:
        """Create or replace an EndpointSlice of `service`: (address, nodeName, ready) each."""
        with self.cond:
            old = self.slices.get((namespace, name))
            items = []
            for address, node, ready in endpoints:
                conditions = {} if ready is None else {"ready": ready}
                items.append({"addresses": [address], "nodeName": node, "conditions": conditions})
            obj = {
                "kind": "EndpointSlice",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": service},
                },
                "addressType": address_type,
                "endpoints": items,
            }
            self.slices[(namespace, name)] = obj
            self._record(
                "endpointslices", "MODIFIED" if old else "ADDED", obj, _copy(old) if old else None
            )

    def delete_service(self, namespace: str, name: str) -> None:
        """Remove a Service (its EndpointSlices stay, as until the real GC removes them)."""
        with self.cond:
            self._record("services", "DELETED", self.services.pop((namespace, name)))

    def delete_endpoint_slice(self, namespace: str, name: str) -> None:
        """Remove an EndpointSlice."""
        with self.cond:
            self._record("endpointslices", "DELETED", self.slices.pop((namespace, name)))

    def compact(self) -> None:
        """Forget the history (as etcd's compaction does): older watches get a 410."""
        with self.cond:
            self.events.clear()
            self.compacted = self.version

    def fail(self, code: int | None) -> None:
        """Answer every request with `code` from now on (None: serve again); ends watches."""
        with self.cond:
            self.failing = code
            self.cond.notify_all()

    # ---- reading ------------------------------------------------------------------------

    def _objects(self, query: Query) -> list[dict[str, Any]]:
        stores: dict[str, dict[Any, dict[str, Any]]] = {
            "pods": self.pods,
            "namespaces": self.namespaces,
            "services": self.services,
            "endpointslices": self.slices,
        }
        store = stores[query.kind]
        found = [
            o for o in store.values() if query.namespace in (None, o["metadata"].get("namespace"))
        ]
        return sorted(
            found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        )

    def get(self, query: Query, params: dict[str, str]) -> dict[str, Any]:
        """Return the answer to a GET that is not a watch (a list or one object)."""
        with self.cond:
            if query.name is not None:
                return self._one(query)
            keep = self._filter(params)
            kind = KINDS[query.kind][1]
            items = [o for o in self._objects(query) if keep(o)]
            meta = {"resourceVersion": str(self.version)}
            version = api_version(query.kind)
            return _copy({"kind": kind, "apiVersion": version, "metadata": meta, "items": items})

    def _one(self, query: Query) -> dict[str, Any]:
        if query.kind == "namespaces":
            obj = self.namespaces.get(query.name or "")
        else:
            obj = self.pods.get((query.namespace or "", query.name or ""))
        if obj is None:
            raise ApiError(404, "NotFound", f'{query.kind} "{query.name}" not found')
        return _copy(obj)

    def _filter(self, params: dict[str, str]) -> Callable[[dict[str, Any]], bool]:
        fields = field_filter(params.get("fieldSelector", ""))
        labels = label_filter(params.get("labelSelector", ""))
        return lambda obj: fields(obj) and labels(obj)

    def watch(self, query: Query, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Yield a watch's events (see module): history or current state, then live ones.

        Ends at `timeoutSeconds`, at stop(), when the API starts failing, or after a 410.
        """
        keep = self._filter(params)
        deadline = time.monotonic() + float(params.get("timeoutSeconds") or 1800)
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        with self.cond:
            since, first = self._start(query, params, keep)
        return self._follow(query, keep, since, first, (deadline, bookmarks))

    def _follow(
        self,
        query: Query,
        keep: Callable[[dict[str, Any]], bool],
        since: int | None,
        first: list[dict[str, Any]],
        until: tuple[float, bool],
    ) -> Iterator[dict[str, Any]]:
        deadline, bookmarks = until
        yield from first
        if since is None:
            return
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            with self.cond:
                events = [e for e in self.events if e.version > since]
                if not events and not self._over(deadline):
                    self.cond.wait(min(0.2, max(0.0, next_bookmark - time.monotonic())))
                    events = [e for e in self.events if e.version > since]
                over = self._over(deadline)
                version = self.version
            for event in events:
                since = event.version
                seen = self._seen(event, query, keep)
                if seen:
                    yield {"type": seen, "object": event.obj}
            if bookmarks and (over or time.monotonic() >= next_bookmark):
                yield self._bookmark(query, since if events else version)
                next_bookmark = time.monotonic() + self.bookmark_interval
            if over:
                return

    def _over(self, deadline: float) -> bool:
        return self.stopping or self.failing is not None or time.monotonic() >= deadline

    def _start(
        self, query: Query, params: dict[str, str], keep: Callable[[dict[str, Any]], bool]
    ) -> tuple[int | None, list[dict[str, Any]]]:
        """Return where a watch starts and its first events (the current state, or a 410)."""
        asked = params.get("resourceVersion", "")
        if asked in ("", "0"):
            current = [o for o in self._objects(query) if keep(o)]
            added = [{"type": "ADDED", "object": _copy(o)} for o in current]
            return self.version, added
        if not asked.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resource version: {asked}")
        since = int(asked)
        if since < self.compacted:
            gone = ApiError(410, "Expired", f"too old resource version: {since} ({self.compacted})")
            return None, [{"type": "ERROR", "object": gone.status()}]
        return since, []

    @staticmethod
    def _seen(event: Event, query: Query, keep: Callable[[dict[str, Any]], bool]) -> str | None:
        """Return the event type a watch with a selector sees, or None (as the API does).

        An object that starts matching the selectors is ADDED for the watch, one that stops
        matching is DELETED; one that matched neither before nor after is not seen.
        """
        namespace = event.obj["metadata"].get("namespace")
        if event.kind != query.kind or query.namespace not in (None, namespace):
            return None
        if event.type == "ADDED" or event.old is None:
            return event.type if keep(event.obj) else None
        if event.type == "DELETED":
            return "DELETED" if keep(event.obj) else None
        was, now = keep(event.old), keep(event.obj)
        return {(True, True): "MODIFIED", (False, True): "ADDED", (True, False): "DELETED"}.get(
            (was, now)
        )

    def _bookmark(self, query: Query, version: int) -> dict[str, Any]:
        kind = KINDS[query.kind][0]
        meta = {"resourceVersion": str(version)}
        return {"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": "v1", "metadata": meta}}

    # ---- serving ------------------------------------------------------------------------

    def start(self, netns: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port inside `netns` (None: this namespace) and serve from a thread."""
        if netns is None:
            self.server = _Server((host, port), _Handler)
        else:
            self.server = _in_netns(netns, lambda: _Server((host, port), _Handler))
        self.server.api = self
        self.stopping = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Return the API's base URL (the bound port when started with port 0)."""
        assert self.server is not None, "not started"
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        """End every watch, stop serving and close the listening socket."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(10)
        self.server = self.thread = None

    def __enter__(self) -> KubeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, path: Path, server: str | None = None) -> Path:
        """Write a kubeconfig (JSON, which is YAML) naming this API and its token; return path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "stub",
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
            "clusters": [{"name": "stub", "cluster": {"server": server or self.url}}],
            "users": [{"name": "stub", "user": {"token": self.token}}],
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: KubeApi


def _in_netns(netns: str, make: Callable[[], _Server]) -> _Server:
    """Run `make` in a thread that has entered network namespace `netns`, then left it."""
    made: list[_Server | BaseException] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {netns}")
            try:
                made.append(make())
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        except BaseException as exc:  # handed to the caller's thread
            made.append(exc)
        finally:
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


class _Handler(BaseHTTPRequestHandler):
    """One request to the stub API (the KubeApi is the server's `api`)."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        api = self.server.api
        api.requests.append(self.path)
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            self._check(api)
            query = parse_path(url.path)
            if query.watch or params.get("watch") in ("1", "true"):
                if query.name is not None:
                    raise ApiError(405, "MethodNotAllowed", "a watch of one object: not served")
                self._stream(api.watch(query, params))
            else:
                self._send(200, api.get(query, params))
        except ApiError as exc:
            self._send(exc.code, exc.status())

    def _check(self, api: KubeApi) -> None:
        if self.headers.get("Authorization") != f"Bearer {api.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if api.failing is not None:
            raise ApiError(api.failing, "ServiceUnavailable", "the stub API is failing")

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: Iterator[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        with contextlib.suppress(OSError):
            for event in events:
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass
