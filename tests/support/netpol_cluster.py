"""A two-node calicc cluster in network namespaces for the NetworkPolicy conformance cases.

A "lan" namespace holds a bridge and the stub Kubernetes API (tests/support/kubeapi.py) on its
bridge address; two node namespaces on the bridge run real `calicc agent` processes with the
bundles of a VXLAN cluster file compiled for the test (policies under its policies/, the API
through `kubernetes.kubeconfig`, a kubeconfig under each node's root). Nine pods (x, y, z times
a, b, c, spread over both nodes) are network namespaces wired by the agent's CNI plugin through
the installed conflist, as a runtime wires them (lab/runtime.py); each runs one Python server
answering TCP and UDP on 80 and 81. Their labels and named ports are the API's.

A policy change writes the policy files, runs `calicc build` and waits until both agents have
installed the new cluster part. Probes run from every pod to every pod at once (a prober per
client pod, one thread per server). Nothing here touches the root namespace.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from calicc.lab.netns import ns_add, ns_delete, ns_run, veth_between
from calicc.lab.runtime import SYSTEM_PLUGINS, Attachment, chain_add, chain_del
from tests.support.bundles import stop_bird
from tests.support.kubeapi import KubeApi
from tests.support.netpol_model import Doc, resolve
from tests.support.netpol_truth import NAMESPACES, POD_NAMES, PODS
from tests.support.poll import wait_for

PYTHON = "/usr/bin/python3"  # Debian's: ~12 ms to start (a pyenv shim costs ~180 ms)
CALICC = str(Path(sys.executable).parent / "calicc")
LAN, PORT = "10.31.0.1", 6443
NODES = {"node-1": "10.31.0.11", "node-2": "10.31.0.12"}
KUBECONFIG = "/etc/cni/net.d/calicc-kubeconfig"
CONFLIST = "etc/cni/net.d/10-calicc.conflist"
INSTALLED_INDEX = "etc/calicc/bundle/cluster/index.json"
SERVED = ((80, "TCP"), (80, "UDP"), (81, "TCP"), (81, "UDP"))
PROBE_TIMEOUT = 1.0
CLUSTER = {
    "name": "netpol",
    "network_cidr": "10.244.0.0/16",
    "block_size": 26,
    "ipip_mode": "Never",
    "vxlan_mode": "Always",
    "nat_outgoing": False,
    "service_cluster_ip_range": "10.96.0.0/12",
    "kubernetes": {"kubeconfig": KUBECONFIG},
    "nodes": [{"name": n, "address": f"{a}/24", "interface": "eth0"} for n, a in NODES.items()],
    "policies": ["policies/*.yaml"],
}
# `policies` must match a file: this one selects no pod of the test's namespaces
PLACEHOLDER = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "placeholder", "namespace": "netpol-none"},
    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
}
SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in (80, 81):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            s.listen(64)
        sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s.type == socket.SOCK_STREAM:
            conn, _ = s.accept()
            conn.sendall(b"ok")
            conn.close()
        else:
            data, peer = s.recvfrom(512)
            s.sendto(data, peer)
"""
PROBER = """
import json, socket, sys, threading
timeout, protocol, port = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
targets = sys.argv[4:]
seen = [False] * len(targets)
def tcp(i, ip):
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            seen[i] = s.recv(2) == b"ok"
    except OSError:
        pass
def udp(i, ip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout / 2)
        for _ in range(2):
            try:
                s.sendto(b"probe", (ip, port))
                seen[i] = s.recvfrom(512)[0] == b"probe"
                return
            except OSError:
                pass
run = tcp if protocol == "TCP" else udp
threads = [threading.Thread(target=run, args=(i, ip)) for i, ip in enumerate(targets)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(seen))
"""


def default_labels() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Return upstream's labels: pods pod=<name>, namespaces ns=<name>."""
    pods = {f"{ns}/{p}": {"pod": p} for ns in NAMESPACES for p in POD_NAMES}
    return pods, {ns: {"ns": ns} for ns in NAMESPACES}


class NetpolCluster:
    """The namespaces, API, agents, pods and servers; `close` removes all of them."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.tag = uuid.uuid4().hex[:6]
        self.created: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.agents: dict[str, subprocess.Popen[str]] = {}
        self.api = KubeApi(token=uuid.uuid4().hex)
        self.nodes: dict[str, str] = {}  # node name -> namespace
        self.pod_ns: dict[str, str] = {}  # pod -> namespace
        self.pod_node: dict[str, str] = {}
        self.addresses: dict[str, str] = {}
        self.policies: dict[tuple[str, str], Doc] = {}
        self.pod_labels, self.ns_labels = default_labels()

    # ---- setting up -------------------------------------------------------------------------

    def ns(self, suffix: str) -> str:
        name = f"calicc-t-{self.tag}-{suffix}"
        ns_add(name)
        self.created.append(name)
        return name

    def root(self, node: str) -> Path:
        return self.work / "nodes" / node

    def up(self) -> None:
        """Make the lan, the API, both nodes with their agents, then the pods and servers."""
        lan = self.ns("lan")
        for cmd in ("link add br0 type bridge", f"addr add {LAN}/24 dev br0", "link set br0 up"):
            ns_run(lan, ["ip", *cmd.split()])
        self.api.start(lan, LAN, PORT)
        for name in NAMESPACES:
            self.api.put_namespace(name, self.ns_labels[name])
        (self.work / "cluster.yaml").write_text(yaml.safe_dump(CLUSTER))
        self.build()
        for index, name in enumerate(NODES, start=1):
            self.nodes[name] = self.node(lan, name, index)
        self.wait_installed()
        for index, pod in enumerate(PODS):
            self.pod_node[pod] = list(NODES)[index % len(NODES)]
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(self.add_pod, PODS))

    def node(self, lan: str, name: str, index: int) -> str:
        ns = self.ns(f"n{index}")
        veth_between(ns, "eth0", lan, f"p{index}")
        ns_run(lan, ["ip", "link", "set", f"p{index}", "master", "br0"])
        ns_run(ns, ["ip", "addr", "add", f"{NODES[name]}/24", "dev", "eth0"])
        ns_run(ns, ["ip", "route", "add", "default", "via", LAN])  # proxy ARP needs one
        root = self.root(name)
        (root / KUBECONFIG.lstrip("/")).parent.mkdir(parents=True)
        self.api.kubeconfig(root / KUBECONFIG.lstrip("/"), f"http://{LAN}:{PORT}")
        bundle = self.work / "rendered" / "nodes" / name
        args = ["agent", "--bundle", str(bundle), "--root", str(root), "--interval", "0.3"]
        with (self.work / f"{name}.log").open("w") as log:
            self.agents[name] = subprocess.Popen(
                ["ip", "netns", "exec", ns, CALICC, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.procs.append(self.agents[name])
        return ns

    def add_pod(self, pod: str) -> None:
        """Create `pod` in the API, wire it through the CNI plugin, record its address, serve."""
        namespace, name = pod.split("/")
        node = self.pod_node[pod]
        ports = [(f"serve-{p}-{proto.lower()}", p, proto) for p, proto in SERVED]
        self.api.put_pod(namespace, name, self.pod_labels[pod], None, node, ports=ports)
        self.pod_ns[pod] = self.ns(f"{namespace}-{name}")
        root = self.root(node)
        conflist = json.loads((root / CONFLIST).read_text())
        result = chain_add(self.nodes[node], conflist, self.attachment(pod), self.cni_path(node))
        self.addresses[pod] = str(result["ips"][0]["address"]).split("/")[0]
        self.api.put_pod(namespace, name, self.pod_labels[pod], self.addresses[pod], node, ports)
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.pod_ns[pod], PYTHON, "-c", SERVER],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(server)
        assert server.stdout is not None
        ready = server.stdout.readline()
        server.stdout.close()
        assert ready == "ready\n", f"the server of {pod} did not start"

    def attachment(self, pod: str) -> Attachment:
        namespace, name = pod.split("/")
        return Attachment(
            container_id=f"netpol-{self.tag}-{namespace}-{name}",
            netns=f"/var/run/netns/{self.pod_ns[pod]}",
            ifname="eth0",
            args={"K8S_POD_NAMESPACE": namespace, "K8S_POD_NAME": name},
        )

    def cni_path(self, node: str) -> tuple[Path, ...]:
        return (self.root(node) / "opt/cni/bin", SYSTEM_PLUGINS)

    # ---- changing policies and labels -------------------------------------------------------

    def build(self) -> None:
        """Write the policies, compile the cluster file (the agents pick the bundle up)."""
        directory = self.work / "policies"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        docs = [PLACEHOLDER, *self.policies.values()]
        for index, doc in enumerate(docs):
            text = resolve(yaml.safe_dump(doc), self.addresses)
            (directory / f"{index:02d}.yaml").write_text(text)
        done = subprocess.run(
            [CALICC, "build", str(self.work / "cluster.yaml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def wait_installed(self) -> None:
        """Wait until every agent has installed the rendered cluster part (applied it all)."""
        want = (self.work / "rendered" / "cluster" / "index.json").read_text()

        def installed() -> bool:
            paths = [self.root(n) / INSTALLED_INDEX for n in NODES]
            return all(p.exists() and p.read_text() == want for p in paths)

        wait_for(installed, f"both agents applying the bundle (logs: {self.work}/*.log)", 30)

    def set_policies(self, policies: Mapping[tuple[str, str], Doc]) -> None:
        """Make `policies` the ones in force: build, then wait for both agents."""
        if dict(policies) != self.policies:
            self.policies = dict(policies)
            self.build()
            self.wait_installed()

    def label_pod(self, pod: str, labels: Mapping[str, str]) -> None:
        self.pod_labels[pod] = dict(labels)
        namespace, name = pod.split("/")
        self.api.label_pod(namespace, name, self.pod_labels[pod])

    def label_namespace(self, namespace: str, labels: Mapping[str, str]) -> None:
        self.ns_labels[namespace] = dict(labels)
        self.api.label_namespace(namespace, self.ns_labels[namespace])

    def reset_labels(self) -> None:
        """Put upstream's labels back where a case changed them."""
        pods, spaces = default_labels()
        for pod, labels in pods.items():
            if self.pod_labels[pod] != labels:
                self.label_pod(pod, labels)
        for namespace, labels in spaces.items():
            if self.ns_labels[namespace] != labels:
                self.label_namespace(namespace, labels)

    def pods_file(self) -> Path:
        """Write the pods as `calicc trace` reads them: as the API has them, addresses included."""
        served = [
            {"name": f"serve-{port}-{proto.lower()}", "port": port, "protocol": proto}
            for port, proto in SERVED
        ]
        pods = [
            {
                "name": pod.split("/")[1],
                "namespace": pod.split("/")[0],
                "node": self.pod_node[pod],
                "labels": self.pod_labels[pod],
                "ports": served,
                "ips": [self.addresses[pod]],
            }
            for pod in PODS
        ]
        path = self.work / "pods.yaml"
        path.write_text(yaml.safe_dump({"namespaces": self.ns_labels, "pods": pods}))
        return path

    # ---- probing ----------------------------------------------------------------------------

    def probe(self, port: int, protocol: str) -> dict[tuple[str, str], bool]:
        """Probe every pod from every pod on `port`/`protocol` at once; return the table."""
        targets = [self.addresses[pod] for pod in PODS]
        args = [PYTHON, "-c", PROBER, str(PROBE_TIMEOUT), protocol, str(port), *targets]
        procs = {
            src: subprocess.Popen(
                ["ip", "netns", "exec", self.pod_ns[src], *args], stdout=subprocess.PIPE, text=True
            )
            for src in PODS
        }
        table: dict[tuple[str, str], bool] = {}
        for src, proc in procs.items():
            out, _ = proc.communicate(timeout=30)
            for dst, ok in zip(PODS, json.loads(out), strict=True):
                table[src, dst] = bool(ok)
        return table

    # ---- tearing down -----------------------------------------------------------------------

    def close(self) -> None:
        """DEL the pods, stop what was started (by PID), remove every namespace and the API."""
        for pod in self.addresses:
            node = self.pod_node[pod]
            conflist = json.loads((self.root(node) / CONFLIST).read_text())
            chain_del(self.nodes[node], conflist, self.attachment(pod), self.cni_path(node), None)
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for node in NODES:
            stop_bird(self.root(node))
        for name in reversed(self.created):
            ns_delete(name)
        self.api.stop()


def logs(work: Path) -> str:
    """Return the tail of each agent's log, for a failure message."""
    return "\n".join(f"{p.name}:\n{p.read_text()[-1500:]}" for p in sorted(work.glob("*.log")))
