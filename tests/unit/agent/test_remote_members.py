"""Cluster-wide members of the selector and named-port sets: pods x namespaces x selectors,
the Kubernetes lists, the peer-record source, and what the agent keeps when a source fails."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from calicc.agent import AgentError
from calicc.agent.bundle import load_bundle
from calicc.agent.cni.endpoint_policy import EndpointRecord
from calicc.agent.endpoints import Endpoints, runtime_members
from calicc.agent.kube_endpoints import NAMESPACES_PATH, PODS_PATH, KubeSource
from calicc.agent.membership import (
    ClusterPod,
    cluster_members,
    namespaces_from_list,
    pods_from_list,
)
from calicc.agent.peers import peer_members, peers_fingerprint
from calicc.agent.remote import Remote, conflist_kubeconfig, runtime_sets
from calicc.contract.manifest import NodeManifest
from calicc.contract.names import CONFLIST
from tests.conftest import EXAMPLES

DEMO = EXAMPLES / "policies-demo" / "rendered" / "nodes" / "node-1"
API_SET = "cali40s:Y0wk1bBX7T49x15BqTQ05r8"  # namespace shop, app=api
PORT_SET = "cali40n:pfSn7gpvTdXhnz9puJpFlfW"  # named port http/TCP
DNS_SET = "cali40s:w01VvwdRHS-ei-R0QTBXRyJ"  # k8s-app=kube-dns in any namespace
MON_SET = "cali40s:GM3uNOOVrOMxbhnBtzDkUEK"  # role exists, in namespaces with team=monitoring
POOLS = (IPv4Network("10.244.0.0/16"), IPv4Network("10.250.0.0/16"))


def manifest() -> NodeManifest:
    return load_bundle(DEMO).manifest


def pod(namespace: str, name: str, ip: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    """A Pod object as GET /api/v1/pods lists it."""
    item: dict[str, Any] = {
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": extra.get("spec", {"containers": [{"name": "c"}]}),
        "status": {"phase": extra.get("phase", "Running"), "podIP": ip},
    }
    if "ips" in extra:
        item["status"]["podIPs"] = [{"ip": a} for a in extra["ips"]]
    return item


def pod_list(*items: dict[str, Any], version: str = "1") -> dict[str, Any]:
    return {"kind": "PodList", "metadata": {"resourceVersion": version}, "items": list(items)}


def ns_list(spaces: dict[str, dict[str, str]], version: str = "1") -> dict[str, Any]:
    items = [{"metadata": {"name": n, "labels": labels}} for n, labels in spaces.items()]
    return {"kind": "NamespaceList", "metadata": {"resourceVersion": version}, "items": items}


HTTP = {"containers": [{"ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9}]}]}
SPACES = {"shop": {"team": "shop"}, "mon": {"team": "monitoring"}, "kube-system": {}}
CLUSTER = pod_list(
    pod("shop", "api-0", "10.244.0.5", {"app": "api"}),  # node-1's block
    pod("shop", "api-1", "10.244.0.130", {"app": "api"}),  # node-2's block
    pod("web", "api-2", "10.244.0.131", {"app": "api"}),  # app=api, but not in shop
    pod("shop", "web-0", "10.250.0.140", {"app": "web"}, spec=HTTP),
    pod("mon", "prom-0", "10.244.0.132", {"role": "scraper"}),
    pod("shop", "prom-1", "10.244.0.133", {"role": "scraper"}),  # role, but team=shop
    pod("kube-system", "dns-0", "10.244.0.134", {"k8s-app": "kube-dns"}),
    pod("shop", "api-old", "10.244.0.135", {"app": "api"}, phase="Succeeded"),
    pod("shop", "api-host", "10.30.0.12", {"app": "api"}),  # host network: in no pool
    pod("shop", "api-new", "", {"app": "api"}, phase="Pending"),  # no address yet
)


def test_pod_list_keeps_live_pods_with_pool_addresses_and_named_ports() -> None:
    found = pods_from_list(CLUSTER, POOLS)
    names = [p.name for p in found]
    assert "api-old" not in names
    assert "api-host" not in names
    assert "api-new" not in names
    assert len(found) == 7
    web = next(p for p in found if p.name == "web-0")
    assert web.ports == (("http", "TCP", 8080),)
    dual = pods_from_list(pod_list(pod("a", "b", "", {}, ips=["fd00::1", "10.244.1.1"])), POOLS)
    assert [p.address for p in dual] == ["10.244.1.1"]


def test_members_across_nodes_by_pod_and_namespace_selectors() -> None:
    members = cluster_members(
        manifest().ipsets, pods_from_list(CLUSTER, POOLS), namespaces_from_list(ns_list(SPACES))
    )
    assert members[API_SET] == {"10.244.0.5", "10.244.0.130"}
    assert members[MON_SET] == {"10.244.0.132"}
    assert members[DNS_SET] == {"10.244.0.134"}
    assert members[PORT_SET] == {"10.250.0.140,tcp:8080"}
    static = {s.name for s in manifest().ipsets if s.selector is None}
    assert not static & set(members), "static sets are the compiler's, never filled here"


def test_namespace_labels_decide_and_unknown_namespaces_have_none() -> None:
    prom = [ClusterPod("mon", "prom-0", "10.244.0.132", {"role": "x"})]
    assert cluster_members(manifest().ipsets, prom, {})[MON_SET] == frozenset()
    relabelled = {"mon": {"team": "monitoring"}}
    assert cluster_members(manifest().ipsets, prom, relabelled)[MON_SET] == {"10.244.0.132"}


def test_runtime_sets_unite_local_and_remote_or_keep_the_kernels_when_unknown() -> None:
    local = {API_SET: frozenset({"10.244.0.5"}), DNS_SET: frozenset()}
    kernel = {API_SET: frozenset({"10.244.0.130"}), "cali40all-ipam-pools": frozenset({"x"})}
    kept = runtime_sets(local, None, kernel)
    assert kept == {API_SET: {"10.244.0.5", "10.244.0.130"}, DNS_SET: frozenset()}
    remote = {API_SET: frozenset({"10.244.0.131"}), "cali40s:gone": frozenset({"1.2.3.4"})}
    assert runtime_sets(local, remote, kernel) == {
        API_SET: {"10.244.0.5", "10.244.0.131"},
        DNS_SET: frozenset(),
    }


class FakeApi(KubeSource):
    """A KubeSource answering from dicts, counting GETs."""

    answers: dict[str, dict[str, Any]]
    calls: int = 0

    def get(self, path: str) -> dict[str, Any]:
        self.calls += 1
        if path not in self.answers:
            raise AgentError(f"Kubernetes API: GET {path} failed")
        return self.answers[path]


def fake(pods: dict[str, Any], spaces: dict[str, Any]) -> FakeApi:
    source = FakeApi(Path("/nowhere"))
    source.answers = {PODS_PATH: pods, NAMESPACES_PATH: spaces}
    return source


def test_kube_source_recomputes_only_when_a_list_or_the_bundle_changes() -> None:
    source = fake(CLUSTER, ns_list(SPACES))
    first = source.refresh(manifest(), "d1")
    assert first[API_SET] == {"10.244.0.5", "10.244.0.130"}
    assert source.refresh(manifest(), "d1") is first, "same versions: nothing recomputed"
    assert source.refresh(manifest(), "d2") is not first
    gone = [i for i in CLUSTER["items"] if i["metadata"]["name"] != "api-1"]
    source.answers[PODS_PATH] = pod_list(*gone, version="2")
    assert source.refresh(manifest(), "d2")[API_SET] == {"10.244.0.5"}


def test_remote_keeps_last_members_when_the_api_fails(tmp_path: Path) -> None:
    remote = Remote(kubeconfig=Path("/nowhere"))
    remote.kube = fake(CLUSTER, ns_list(SPACES))
    remote.refresh(manifest(), "d", tmp_path, None)
    before = remote.members
    assert before is not None
    assert before[API_SET] == {"10.244.0.5", "10.244.0.130"}
    remote.kube.answers.clear()
    with pytest.raises(AgentError, match="Kubernetes API"):
        remote.refresh(manifest(), "d", tmp_path, None)
    assert remote.members == before


def write_record(directory: Path, record: EndpointRecord) -> None:
    path = directory / "endpoints" / f"{record.iface}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**record.__dict__, "members": [list(m) for m in record.members]}
    path.write_text(json.dumps(data))


def record(iface: str, address: str, namespace: str, **labels: str) -> EndpointRecord:
    members = ((PORT_SET, f"{address},tcp:8080"),) if labels.get("app") == "web" else ()
    return EndpointRecord(iface, f"c-{iface}", "eth0", address, namespace, labels, {}, members)


def test_peer_records_of_other_nodes_fill_the_sets(tmp_path: Path) -> None:
    peers = tmp_path / "peers"
    write_record(peers / "node-2", record("caliaaaaaaaaaaa", "10.244.0.130", "shop", app="api"))
    write_record(peers / "node-2", record("calibbbbbbbbbbb", "10.244.0.140", "shop", app="web"))
    write_record(peers / "node-1", record("caliccccccccccc", "10.244.0.9", "shop", app="api"))
    members = peer_members(tmp_path, manifest())  # node-1's own directory is ignored
    assert members[API_SET] == {"10.244.0.130"}
    assert members[PORT_SET] == {"10.244.0.140,tcp:8080"}
    before = peers_fingerprint(tmp_path, "node-1")
    (peers / "node-2/endpoints/caliaaaaaaaaaaa.json").unlink()
    assert peers_fingerprint(tmp_path, "node-1") != before
    assert peer_members(tmp_path, manifest())[API_SET] == frozenset()
    assert peer_members(tmp_path / "missing", manifest()) == {}


def test_remote_reads_peer_records_without_kubeconfig_and_names_a_bad_file(
    tmp_path: Path,
) -> None:
    write_record(
        tmp_path / "peers/node-2", record("caliaaaaaaaaaaa", "10.244.0.130", "shop", app="api")
    )
    remote = Remote()
    remote.refresh(manifest(), "d", tmp_path, None)
    assert remote.members is not None
    assert remote.members[API_SET] == {"10.244.0.130"}
    (tmp_path / "peers/node-3/endpoints").mkdir(parents=True)
    (tmp_path / "peers/node-3/endpoints/x.json").write_text('{"iface": "x"}')
    with pytest.raises(AgentError, match="peers/node-3/endpoints"):
        remote.refresh(manifest(), "d", tmp_path, None)
    assert remote.members[API_SET] == {"10.244.0.130"}, "the last members stay"


def test_kubeconfig_from_the_conflist_under_the_root() -> None:
    text = json.dumps({"plugins": [{"type": "calicc", "kubernetes": {"kubeconfig": "/etc/k"}}]})
    assert conflist_kubeconfig(Path("/r"), text) == Path("/r/etc/k")
    assert conflist_kubeconfig(Path("/r"), load_bundle(DEMO).text(CONFLIST)) is None
    assert conflist_kubeconfig(Path("/r"), None) is None


def test_the_apis_facts_replace_a_listed_local_pods_record() -> None:
    stale = record("caliaaaaaaaaaaa", "10.244.0.130", "shop", app="api")  # now app=web
    fresh = record("calibbbbbbbbbbb", "10.244.0.9", "shop", app="api")  # not listed yet
    live = Endpoints(records=(stale, fresh), members=runtime_members([stale, fresh], manifest()))
    remote = Remote()
    assert remote.local_members(live, manifest())[API_SET] == {"10.244.0.130", "10.244.0.9"}
    relabelled = pod("shop", "api-1", "10.244.0.130", {"app": "web"})
    remote.kubeconfig = Path("/nowhere")
    remote.kube = fake(pod_list(relabelled), ns_list(SPACES))
    remote.refresh(manifest(), "d", Path("/nowhere"), None)
    assert remote.local_members(live, manifest())[API_SET] == {"10.244.0.9"}
    assert remote.members is not None
    assert remote.members[API_SET] == frozenset()
    desired = runtime_sets(remote.local_members(live, manifest()), remote.members, {})
    assert desired[API_SET] == {"10.244.0.9"}
