"""Services and EndpointSlices from the Kubernetes API, turned into BIRD's Local /32 includes.

A node whose node.json has `bird.services` (contract/services.py) advertises, besides the
service CIDRs bird.conf holds, a /32 (/128) for each Service address agent/service_routes.py
picks. `ServiceSource` reads the Services (/api/v1/services) and EndpointSlices
(/apis/discovery.k8s.io/v1/endpointslices) of the cluster: one list each per refresh
(`calicc apply`), or two informers (agent/kube_watch.py) whose events wake the running agent.
The BIRD part writes the includes (`include_texts`) before it checks bird.conf, so a changed
set of addresses is one atomic file write and one `birdc configure`, and an unchanged one none.

While the API fails, the last addresses read stay advertised (an outage must not withdraw a
Service); before a first successful read, and without a configured API, there are none: the
includes hold no route, which is valid BIRD.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calicc.agent import AgentError
from calicc.agent.cni.errors import CniError
from calicc.agent.cni.kube import api_get
from calicc.agent.kube_watch import Informer
from calicc.agent.service_routes import host_routes
from calicc.contract.manifest import NodeManifest
from calicc.contract.services import SERVICE_INCLUDES, Address, ServiceIps, host_route_text

log = logging.getLogger("calicc.agent")
SERVICES = "/api/v1/services"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
FIRST_LIST_WAIT = 2.0
Item = dict[str, Any]


def _version(body: dict[str, Any]) -> str:
    meta = body.get("metadata")
    return str(meta.get("resourceVersion", "")) if isinstance(meta, dict) else ""


def include_texts(ips: ServiceIps, routes: dict[int, list[Address]]) -> dict[str, str]:
    """Return {include path relative to bird.conf: its text} for each family node.json names."""
    return {SERVICE_INCLUDES[v]: host_route_text(routes.get(v, [])) for v in ips.families}


@dataclass
class ServiceSource:
    """The cluster's Services and EndpointSlices, and the host routes last computed from them."""

    watch: bool = False
    on_change: Callable[[], None] = lambda: None
    routes: dict[int, list[Address]] = field(default_factory=dict)
    error: str | None = None
    informers: tuple[Informer, Informer] | None = None
    key: tuple[object, ...] | None = None  # what `routes` were computed from

    def _lists(self, kubeconfig: Path) -> tuple[tuple[object, ...], list[Item], list[Item]]:
        """Return (the lists' versions, Services, EndpointSlices)."""
        if not self.watch:
            try:
                services, slices = api_get(kubeconfig, SERVICES), api_get(kubeconfig, SLICES)
            except CniError as exc:
                raise AgentError(f"Kubernetes API: {exc.msg}") from exc
            versions = (_version(services), _version(slices))
            return versions, list(services.get("items") or []), list(slices.get("items") or [])
        if self.informers is None or self.informers[0].kubeconfig != kubeconfig:
            self.stop()
            self.informers = (
                Informer(kubeconfig, SERVICES, "", self.on_change),
                Informer(kubeconfig, SLICES, "", self.on_change),
            )
            for informer in self.informers:
                informer.start()
            deadline = time.monotonic() + FIRST_LIST_WAIT
            for informer in self.informers:
                informer.synced.wait(max(0.0, deadline - time.monotonic()))
        for informer in self.informers:
            if informer.error is not None or not informer.synced.is_set():
                raise AgentError(f"Kubernetes API: {informer.error or 'no answer yet'}")
        (svc_rev, svc_items), (slice_rev, slice_items) = (i.snapshot() for i in self.informers)
        return ("watch", svc_rev, slice_rev), svc_items, slice_items

    def refresh(self, ips: ServiceIps, node: str, kubeconfig: Path | None) -> dict[str, str]:
        """Read the API again and return the includes' texts (the last routes if it fails).

        The routes are computed again only when a list's version, the node or node.json's
        service CIDRs changed. Without a configured API there are none.
        """
        if kubeconfig is None:
            self.stop()
            self.routes, self.key = {}, None
            self.error = "no Kubernetes API configured: no Local Service is advertised"
        else:
            try:
                versions, services, slices = self._lists(kubeconfig)
                key = (versions, node, ips)
                if key != self.key or "" in versions:  # "": a list without a version
                    self.routes = host_routes(services, slices, node, ips)
                    self.key = key
                self.error = None
            except AgentError as exc:
                if exc.args[0] != self.error:
                    log.warning("service advertisement: %s (keeping the last routes)", exc)
                self.error = str(exc.args[0])
        return include_texts(ips, self.routes)

    def stop(self) -> None:
        """Stop the informers, if watching."""
        for informer in self.informers or ():
            informer.stop()
        self.informers = None


def status_lines(conf_dir: Path, manifest: NodeManifest) -> list[str]:
    """Return `calicc status`'s service lines: the CIDRs, and the /32s the includes hold now.

    `conf_dir` is bird.conf's directory (the includes' base). A node that advertises none
    has no lines.
    """
    ips = manifest.bird.services
    if ips is None:
        return []
    lists = (
        ("cluster", ips.cluster_ips),
        ("external", ips.external_ips),
        ("loadbalancer", ips.loadbalancer_ips),
    )
    lines = ["service IPs (advertised to external peers):"]
    lines += [f"  {name:<13} {', '.join(map(str, nets))}" for name, nets in lists if nets]
    for version in ips.families:
        try:
            text = (conf_dir / SERVICE_INCLUDES[version]).read_text(encoding="utf-8")
        except OSError:
            text = ""
        hosts = [line.split()[1] for line in text.splitlines() if line.startswith("route ")]
        lines.append(f"  Local here    {', '.join(hosts) or 'none'} (IPv{version})")
    return lines
