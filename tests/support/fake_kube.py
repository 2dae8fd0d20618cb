"""A fake Kubernetes API server speaking the real REST list/watch protocol, on loopback.

Lists are JSON with metadata.resourceVersion and limit/continue paging; watches are
chunked streams of ADDED/MODIFIED/DELETED/BOOKMARK events that stay open until
timeoutSeconds; a resourceVersion older than the retained history gets a 410 Gone
ERROR event. Tests can drop every open watch, compact history, or stop the server.

coordination.k8s.io/v1 Leases answer GET, POST and PUT as the API server does for
leader election: a PUT whose metadata.resourceVersion is not the stored one gets 409
Conflict, a POST of an existing name 409 AlreadyExists. Tests can stall lease calls
(an API server that accepts and never answers) to exercise client deadlines.
It also answers TokenReviews (POST /apis/authentication.k8s.io/v1/tokenreviews) for
ServiceAccount tokens the test issues, as the API server does for projected tokens:
authenticated only for a requested audience the token has, naming the service account,
the pod the token is bound to and (Kubernetes 1.30+) its node; and single pods by name.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RESOURCES = {
    "/api/v1/pods": ("Pod", "v1"),
    "/api/v1/nodes": ("Node", "v1"),
    "/apis/apps/v1/replicasets": ("ReplicaSet", "apps/v1"),
    "/apis/batch/v1/jobs": ("Job", "batch/v1"),
}
MAX_WATCH_SECONDS = 30.0
LEASES = re.compile(r"/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(?:/([^/]+))?")
MAX_STALL_SECONDS = 120.0
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
EXTRA = "authentication.kubernetes.io/"


@dataclass(frozen=True)
class ServiceAccountToken:
    """A projected token as the API server knows it."""

    namespace: str
    service_account: str
    audiences: tuple[str, ...]
    pod: tuple[str, str] | None  # (name, uid) of the pod it is bound to
    node: str | None  # reported in the review's extra, as Kubernetes 1.30+ does

    def review(self, requested: list[str]) -> dict[str, Any]:
        wanted = (
            [a for a in requested if a in self.audiences] if requested else list(self.audiences)
        )
        if requested and not wanted:
            return {
                "authenticated": False,
                "error": f"token audiences {list(self.audiences)} is invalid for the target "
                f"audiences {requested}",
            }
        extra: dict[str, list[str]] = {}
        if self.pod is not None:
            extra[EXTRA + "pod-name"], extra[EXTRA + "pod-uid"] = [self.pod[0]], [self.pod[1]]
        if self.node is not None:
            extra[EXTRA + "node-name"] = [self.node]
        return {
            "authenticated": True,
            "audiences": wanted,
            "user": {
                "username": f"system:serviceaccount:{self.namespace}:{self.service_account}",
                "uid": f"uid-sa-{self.service_account}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{self.namespace}"],
                "extra": extra,
            },
        }


@dataclass
class _Store:
    revision: int = 100
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    history: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)
    oldest_kept: int = 100
    condition: threading.Condition = field(default_factory=threading.Condition)
    generation: int = 0  # bumped to drop open watches


class FakeKubeApi:
    def __init__(self, port: int = 0, first_revision: int = 100) -> None:
        """`first_revision` lets a "restarted" server continue the same etcd history."""
        self.store = _Store(revision=first_revision, oldest_kept=first_revision)
        self.requests: list[str] = []
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.stall_leases = threading.Event()
        self.tokens: dict[str, ServiceAccountToken] = {}
        self.token_reviews = 0
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the cluster's contents -------------------------------------------------------

    def put(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object (path is a RESOURCES key); returns the stored copy."""
        kind, api_version = RESOURCES[path]
        with self.store.condition:
            self.store.revision += 1
            stored = copy.deepcopy(obj)
            stored.setdefault("kind", kind)
            stored.setdefault("apiVersion", api_version)
            meta = stored.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.store.revision)
            meta.setdefault("uid", f"uid-{meta.get('namespace', '')}-{meta['name']}")
            key = f"{meta.get('namespace', '')}/{meta['name']}"
            bucket = self.store.objects.setdefault(path, {})
            event = "MODIFIED" if key in bucket else "ADDED"
            bucket[key] = stored
            self.store.history.append((self.store.revision, path, event, stored))
            self.store.condition.notify_all()
            return stored

    def delete(self, path: str, namespace: str, name: str) -> None:
        with self.store.condition:
            stored = self.store.objects.get(path, {}).pop(f"{namespace}/{name}")
            self.store.revision += 1
            gone = copy.deepcopy(stored)
            gone["metadata"]["resourceVersion"] = str(self.store.revision)
            self.store.history.append((self.store.revision, path, "DELETED", gone))
            self.store.condition.notify_all()

    def compact(self) -> None:
        """Forget history, so a watch from an older resourceVersion gets 410 Gone."""
        with self.store.condition:
            self.store.history.clear()
            self.store.oldest_kept = self.store.revision
            self.store.condition.notify_all()

    def issue_token(self, token: str, sa_token: ServiceAccountToken) -> str:
        self.tokens[token] = sa_token
        return token

    def revoke_token(self, token: str) -> None:
        """As when the pod a token is bound to is deleted: the token stops authenticating."""
        self.tokens.pop(token, None)

    def drop_watches(self) -> None:
        with self.store.condition:
            self.store.generation += 1
            self.store.condition.notify_all()

    # -- serving ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def write_kubeconfig(self, path: Path, cluster: str = "fake-cluster") -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": cluster,
                    "clusters": [{"name": cluster, "cluster": {"server": self.url}}],
                    "contexts": [
                        {"name": cluster, "context": {"cluster": cluster, "user": "tester"}}
                    ],
                    "users": [{"name": "tester", "user": {"token": "fake"}}],
                }
            )
        )
        return path

    def start(self) -> FakeKubeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api._handle(self)

            def do_POST(self) -> None:
                api._handle(self)

            def do_PUT(self) -> None:
                api._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (as an API server outage): close the listener and every watch."""
        if self._server is None:
            return
        self.drop_watches()
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def _token_review(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        self.token_reviews += 1
        spec = body.get("spec") or {}
        known = self.tokens.get(spec.get("token", ""))
        status = (
            known.review(list(spec.get("audiences") or []))
            if known is not None
            else {"authenticated": False, "error": "invalid bearer token"}
        )
        review = {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
        self._json(handler, 201, review)

    def _get_pod(self, handler: BaseHTTPRequestHandler, namespace: str, name: str) -> None:
        with self.store.condition:
            found = self.store.objects.get("/api/v1/pods", {}).get(f"{namespace}/{name}")
            found = copy.deepcopy(found)
        if found is None:
            self._json(handler, 404, {"kind": "Status", "code": 404, "reason": "NotFound"})
        else:
            self._json(handler, 200, found)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlparse(handler.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        self.requests.append(handler.path)
        if parsed.path == TOKEN_REVIEWS and handler.command == "POST":
            self._token_review(handler)
            return
        lease_path = LEASES.fullmatch(parsed.path)
        if lease_path:
            self._lease(handler, lease_path.group(1), lease_path.group(2))
            return
        parts = parsed.path.split("/")
        if len(parts) == 7 and parts[:4] == ["", "api", "v1", "namespaces"] and parts[5] == "pods":
            self._get_pod(handler, parts[4], parts[6])
            return
        if parsed.path not in RESOURCES:
            self._json(handler, 404, {"kind": "Status", "code": 404, "reason": "NotFound"})
            return
        if query.get("watch") in ("true", "1", "True"):
            self._watch(handler, parsed.path, query)
        else:
            self._list(handler, parsed.path, query)

    def _json(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.store.condition:
            stored = self.leases.get((namespace, name))
            return copy.deepcopy(stored) if stored else None

    def _lease(self, handler: BaseHTTPRequestHandler, namespace: str, name: str | None) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else {}
        deadline = time.monotonic() + MAX_STALL_SECONDS
        while self.stall_leases.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)  # accepted, never answered (until the test lets go)
        with self.store.condition:
            code, answer = self._lease_answer(handler.command, namespace, name, body)
        self._json(handler, code, answer)

    def _lease_answer(
        self, method: str, namespace: str, name: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Called with the store's lock held: the status code and body of one lease call."""
        if method == "POST" and name is None:
            key = (namespace, str(body.get("metadata", {}).get("name", "")))
            if key in self.leases:
                return _status(409, "AlreadyExists", f"leases {key[1]!r} already exists")
            return 201, self._store_lease(key, body)
        key = (namespace, name or "")
        stored = self.leases.get(key)
        if stored is None:
            return _status(404, "NotFound", f"leases {name!r} not found")
        if method == "GET":
            return 200, copy.deepcopy(stored)
        if method != "PUT":
            return _status(405, "MethodNotAllowed", f"{method} is not served here")
        if (
            str(body.get("metadata", {}).get("resourceVersion", ""))
            != (stored["metadata"]["resourceVersion"])
        ):
            return _status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest "
                "version and try again",
            )
        return 200, self._store_lease(key, body, stored)

    def _store_lease(
        self, key: tuple[str, str], body: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Called with the store's lock held: a new resourceVersion on every write."""
        self.store.revision += 1
        stored = copy.deepcopy(body)
        stored.update(kind="Lease", apiVersion="coordination.k8s.io/v1")
        meta = stored.setdefault("metadata", {})
        meta.update(namespace=key[0], name=key[1], resourceVersion=str(self.store.revision))
        meta["uid"] = (previous or {}).get("metadata", {}).get("uid") or f"uid-lease-{key[1]}"
        self.leases[key] = stored
        return copy.deepcopy(stored)

    def _list(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        kind, api_version = RESOURCES[path]
        with self.store.condition:
            items = [copy.deepcopy(o) for _, o in sorted(self.store.objects.get(path, {}).items())]
            revision = self.store.revision
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(items) or 1
        page = items[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        self._json(
            handler,
            200,
            {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": page},
        )

    def _watch(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        since = int(query.get("resourceVersion") or 0)
        timeout = min(float(query.get("timeoutSeconds") or MAX_WATCH_SECONDS), MAX_WATCH_SECONDS)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "True", "1")
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def send(event: dict[str, Any]) -> None:
            data = json.dumps(event).encode() + b"\n"
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        deadline = time.monotonic() + timeout
        with self.store.condition:
            generation = self.store.generation
            if since and since < self.store.oldest_kept:
                send(
                    {
                        "type": "ERROR",
                        "object": {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "code": 410,
                            "reason": "Expired",
                            "message": f"too old resource version: {since}",
                        },
                    }
                )
                handler.wfile.write(b"0\r\n\r\n")
                return

        def events_after(version: int) -> list[tuple[int, str, dict[str, Any]]]:
            return [(rv, e, o) for rv, p, e, o in self.store.history if p == path and rv > version]

        kind, api_version = RESOURCES[path]
        try:
            while time.monotonic() < deadline:
                bookmark = None
                with self.store.condition:
                    if self.store.generation != generation:
                        handler.close_connection = True
                        return  # dropped: no terminating chunk, as a broken connection
                    pending = events_after(since)
                    if not pending:
                        self.store.condition.wait(timeout=0.2)
                        pending = events_after(since)
                        if not pending and bookmarks and self.store.revision > since:
                            since = self.store.revision  # other resources moved on
                            bookmark = {
                                "type": "BOOKMARK",
                                "object": {
                                    "kind": kind,
                                    "apiVersion": api_version,
                                    "metadata": {"resourceVersion": str(since)},
                                },
                            }
                for rv, event, obj in pending:
                    send({"type": event, "object": obj})
                    since = rv
                if bookmark is not None:
                    send(bookmark)
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return


def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def controller_reference(owner: tuple[str, str]) -> list[dict[str, Any]]:
    kind, name = owner
    return [
        {
            "apiVersion": "apps/v1",
            "kind": kind,
            "name": name,
            "uid": f"uid-{name}",
            "controller": True,
        }
    ]


def pod(
    name: str,
    namespace: str = "default",
    *,
    owner: tuple[str, str] | None = None,
    node: str = "node-a",
    labels: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    qos: str = "Burstable",
    priority_class: str = "",
    host_network: bool = False,
    uid: str | None = None,
    container: str = "app",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels or {},
        "uid": uid or f"uid-{namespace}-{name}",
    }
    if owner:
        meta["ownerReferences"] = controller_reference(owner)
    spec: dict[str, Any] = {
        "nodeName": node,
        "hostNetwork": host_network,
        "containers": [
            {
                "name": container,
                "image": "registry.local/app:1",
                "resources": {"requests": requests or {}, "limits": limits or {}},
            }
        ],
    }
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {"metadata": meta, "spec": spec, "status": {"qosClass": qos, "phase": "Running"}}


def owned(name: str, namespace: str, owner: tuple[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner:
        meta["ownerReferences"] = controller_reference(owner)
    return {"metadata": meta, "spec": {}}


def node(
    name: str,
    *,
    zone: str = "eu-west-1a",
    region: str = "eu-west-1",
    instance_type: str = "m5.large",
    provider_id: str = "aws:///eu-west-1a/i-0abc",
    kubelet: str = "v1.30.2",
    runtime: str = "containerd://1.7.13",
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {
        "topology.kubernetes.io/zone": zone,
        "topology.kubernetes.io/region": region,
        "node.kubernetes.io/instance-type": instance_type,
        **(extra_labels or {}),
    }
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"providerID": provider_id},
        "status": {"nodeInfo": {"kubeletVersion": kubelet, "containerRuntimeVersion": runtime}},
    }
