"""CNI plugin without a network: request/error handling, versions, the launcher and the agent
socket (served vs standalone), labels from runtimeConfig and from a stub Kubernetes API."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from calicc.agent.cni.endpoint_policy import pod_facts_for
from calicc.agent.cni.errors import INCOMPATIBLE_VERSION, INVALID_CONFIG, INVALID_ENV, CniError
from calicc.agent.cni.kube import pod_facts
from calicc.agent.cni.main import run
from calicc.agent.cni.request import parse_request
from calicc.agent.cni.server import MAX_REQUEST, decode_request, read_request
from calicc.agent.cni.thin import encode_request

CONF = {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calicc"}


def test_missing_env_is_error_4_with_advice() -> None:
    code, out = run("plugin", {"CNI_COMMAND": "ADD"}, json.dumps(CONF).encode())
    error = json.loads(out)
    assert code == INVALID_ENV == error["code"]
    assert "CNI_CONTAINERID is not set" in error["msg"]


def test_bad_config_is_error_7_or_6() -> None:
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0"}
    code, out = run("plugin", env, b'{"cniVersion": "1.0.0"}')
    assert (code, json.loads(out)["code"]) == (INVALID_CONFIG, INVALID_CONFIG)
    code, out = run("plugin", env, b"{not json")
    assert json.loads(out)["code"] == 6


def test_version_lists_supported_versions() -> None:
    code, out = run("ipam", {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.4.0"}')
    body = json.loads(out)
    assert code == 0
    assert body["cniVersion"] == "0.4.0"
    assert {"0.3.1", "0.4.0", "1.0.0", "1.1.0"} <= set(body["supportedVersions"])


def test_unsupported_version_and_check_before_040() -> None:
    env = {"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0"}
    _, out = run("plugin", env, json.dumps({**CONF, "cniVersion": "0.3.1"}).encode())
    assert json.loads(out)["code"] == INCOMPATIBLE_VERSION
    _, out = run("plugin", env, json.dumps({**CONF, "cniVersion": "2.0.0"}).encode())
    assert json.loads(out)["code"] == INCOMPATIBLE_VERSION


def test_root_prefixes_state_and_bundle() -> None:
    env = {"CNI_COMMAND": "GC", "CALICC_ROOT": "/tmp/r"}
    req = parse_request(env, json.dumps({**CONF, "bundle": "/etc/calicc/bundle"}).encode())
    assert req.state_dir == Path("/tmp/r/var/lib/calicc")
    assert req.bundle == Path("/tmp/r/etc/calicc/bundle/node.json")


def test_wire_format_round_trip() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_ARGS": "A=1;B=2", "PATH": "/bin"}
    kind, got, stdin = decode_request(encode_request("ipam", env, b'{"x": "\\n\\n"}'))
    assert (kind, stdin) == ("ipam", b'{"x": "\\n\\n"}')
    assert got == {"CNI_COMMAND": "ADD", "CNI_ARGS": "A=1;B=2"}


def test_wire_format_carries_newlines_without_smuggling() -> None:
    env = {
        "CNI_CONTAINERID": "c1\nCNI_IFNAME=eth9",
        "CNI_IFNAME": "eth0",
        "CNI_NETNS": "a\\nb\\\n\n\n{",
        "CNI_\nCNI_PATH": "x",
    }
    kind, got, stdin = decode_request(encode_request("plugin", env, b"{}"))
    assert (kind, stdin, got) == ("plugin", b"{}", env)


def test_socket_server_reads_a_bounded_request() -> None:
    assert read_request(io.BytesIO(b"plugin\n\n{}")) == b"plugin\n\n{}"
    assert read_request(io.BytesIO(b"x" * (MAX_REQUEST + 1))) is None


def test_labels_from_runtime_config() -> None:
    conf = {**CONF, "runtimeConfig": {"labels": {"app": "api"}, "namespaceLabels": {"t": "x"}}}
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_NETNS": "/x"}
    env["CNI_ARGS"] = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=api-0"
    namespace, facts = pod_facts_for(parse_request(env, json.dumps(conf).encode()))
    assert (namespace, facts.labels, facts.namespace_labels) == ("shop", {"app": "api"}, {"t": "x"})


class _Api(BaseHTTPRequestHandler):
    objects: ClassVar[dict[str, object]] = {
        "/api/v1/namespaces/shop/pods/api-0": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
        },
        "/api/v1/namespaces/shop": {"metadata": {"labels": {"team": "shop"}}},
    }

    def do_GET(self) -> None:
        body = self.objects.get(self.path)
        if self.headers.get("Authorization") != "Bearer s3cret" or body is None:
            self.send_response(401 if body else 404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig(tmp_path: Path, server: str, token: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "current-context": "ctx",
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
            }
        )
    )
    return path


def test_pod_facts_from_the_api_server(tmp_path: Path, api: str) -> None:
    facts = pod_facts(kubeconfig(tmp_path, api, "s3cret"), "shop", "api-0")
    assert facts.labels == {"app": "api"}
    assert facts.namespace_labels == {"team": "shop"}
    assert facts.ports == (("http", "TCP", 8080),)


def test_api_errors_say_what_to_check(tmp_path: Path, api: str) -> None:
    with pytest.raises(CniError) as info:
        pod_facts(kubeconfig(tmp_path, api, "wrong"), "shop", "api-0")
    assert "401" in info.value.msg
    assert "credentials" in info.value.msg


def test_pod_facts_through_the_kubeconfig_calicc_writes(tmp_path: Path, api: str) -> None:
    """cluster.yaml's kubernetes.server and token_file reach the API as the plugin reads them."""
    from calicc.compiler.render import render_cluster
    from calicc.contract.names import CLUSTER_KUBECONFIG
    from tests.support.clusters import BASE, plan_of

    token = tmp_path / "api-token"
    token.write_text("s3cret\n")
    (tmp_path / "c").mkdir()
    settings = {"server": api, "token_file": str(token)}
    plan = plan_of(tmp_path / "c", {**BASE, "kubernetes": settings})
    path = tmp_path / "kubeconfig"
    path.write_text(render_cluster(plan)[CLUSTER_KUBECONFIG])
    facts = pod_facts(path, "shop", "api-0")
    assert facts.labels == {"app": "api"}
    assert "s3cret" not in path.read_text()  # the file holds the token's path, not the token
