"""Pod facts from the Kubernetes API: a plain HTTPS GET with the kubeconfig's credentials.

Reads the kubeconfig's current context (server, certificate-authority[-data] or
insecure-skip-tls-verify, and a token, tokenFile or client certificate[-data]/key[-data]).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from calicc.agent.cni.errors import KUBERNETES_FAILURE, CniError
from calicc.agent.cni.pod import PodFacts
from calicc.agent.cni.validate import shown

TIMEOUT = 10.0


def _named(items: Any, name: str, kind: str, path: Path) -> dict[str, Any]:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name:
            found = item.get(kind) or {}
            if isinstance(found, dict):
                return found
            raise CniError(KUBERNETES_FAILURE, f"{path}: {kind} {shown(name)} is not a mapping")
    raise CniError(
        KUBERNETES_FAILURE, f"{path}: no {kind} named {shown(name)}; fix current-context"
    )


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Return where and what a YAML error is, without the snippet of the line (a secret's)."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}" if mark is not None else str(problem)


def load_kubeconfig(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (cluster, user) of the kubeconfig's current context."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = yaml_problem(exc) if isinstance(exc, yaml.YAMLError) else str(exc)
        raise CniError(KUBERNETES_FAILURE, f"cannot read kubeconfig {path}: {reason}") from exc
    if not isinstance(data, dict):
        raise CniError(KUBERNETES_FAILURE, f"kubeconfig {path} is not a YAML mapping")
    context = _named(data.get("contexts"), str(data.get("current-context", "")), "context", path)
    cluster = _named(data.get("clusters"), str(context.get("cluster", "")), "cluster", path)
    user = _named(data.get("users"), str(context.get("user", "")), "user", path)
    return cluster, user


@contextmanager
def _pem_file(data: str | None, path: str | None) -> Iterator[str | None]:
    """Yield a file holding base64 `data` (removed afterwards), else `path`."""
    if data is None:
        yield path
        return
    fd, name = tempfile.mkstemp(prefix="calicc-kube-")
    try:
        os.write(fd, base64.b64decode(data))
        os.close(fd)
        yield name
    finally:
        os.unlink(name)


def ssl_context(cluster: dict[str, Any], user: dict[str, Any]) -> ssl.SSLContext:
    """Return the TLS context: the cluster's CA (or no verification when asked), client cert."""
    context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif "certificate-authority-data" in cluster:
        context.load_verify_locations(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
    elif "certificate-authority" in cluster:
        context.load_verify_locations(cafile=cluster["certificate-authority"])
    with (
        _pem_file(user.get("client-certificate-data"), user.get("client-certificate")) as cert,
        _pem_file(user.get("client-key-data"), user.get("client-key")) as key,
    ):
        if cert:
            context.load_cert_chain(cert, key)
    return context


def _token(user: dict[str, Any]) -> str | None:
    if user.get("token"):
        return str(user["token"])
    if user.get("tokenFile"):
        return Path(user["tokenFile"]).read_text(encoding="utf-8").strip()
    return None


def _prepared(kubeconfig: Path, api_path: str) -> tuple[str, dict[str, str], ssl.SSLContext | None]:
    """Return the URL of `api_path`, the request headers and the TLS context (https only)."""
    cluster, user = load_kubeconfig(kubeconfig)
    server = str(cluster.get("server", "")).rstrip("/")
    headers = {"Accept": "application/json"}
    token = _token(user)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    context = ssl_context(cluster, user) if server.startswith("https:") else None
    return server + api_path, headers, context


def api_get(kubeconfig: Path, api_path: str) -> dict[str, Any]:
    """GET `api_path` from the API server of `kubeconfig` and return the decoded object."""
    url, headers, context = _prepared(kubeconfig, api_path)
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as answer:
            body: dict[str, Any] = json.loads(answer.read())
            return body
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # its response holds the connection
        raise CniError(
            KUBERNETES_FAILURE,
            f"GET {url} failed ({exc}); check the API server and the credentials in {kubeconfig}",
        ) from exc


def open_stream(
    kubeconfig: Path, api_path: str, timeout: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Start a long GET (a watch) and return the connection and its response, status 200.

    The caller reads the response line by line and closes the connection; shutting its socket
    down from another thread ends a blocked read. `timeout` bounds each socket read.
    """
    url, headers, context = _prepared(kubeconfig, api_path)
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise CniError(KUBERNETES_FAILURE, f"GET {url} failed ({exc})") from exc
    if response.status != HTTPStatus.OK:
        conn.close()
        raise CniError(KUBERNETES_FAILURE, f"GET {url} answered {response.status}")
    return conn, response


def pod_facts(kubeconfig: Path, namespace: str, pod: str) -> PodFacts:
    """Return the pod's labels, its namespace's labels and its named container ports."""
    ns_q, pod_q = quote(namespace, safe=""), quote(pod, safe="")
    body = api_get(kubeconfig, f"/api/v1/namespaces/{ns_q}/pods/{pod_q}")
    space = api_get(kubeconfig, f"/api/v1/namespaces/{ns_q}")
    ports = tuple(
        sorted(
            (str(p["name"]), str(p.get("protocol", "TCP")), int(p["containerPort"]))
            for c in body.get("spec", {}).get("containers", [])
            for p in c.get("ports", [])
            if p.get("name")
        )
    )
    return PodFacts(
        labels=dict(body.get("metadata", {}).get("labels") or {}),
        namespace_labels=dict(space.get("metadata", {}).get("labels") or {}),
        ports=ports,
    )
