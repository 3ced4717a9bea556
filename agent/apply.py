"""One reconcile of the node to its bundle: parts in dependency order, nothing on top of a failure.

Parts, in the order they run, and the parts each depends on (DEPENDS):

    address       -                     the detected node address is the compiled one
    sysctl        address               sysctls whose files exist (before the devices)
    links         sysctl                tunnel devices: kind, MTU, state, address
    link-sysctl   links                 the devices' own sysctls (rp_filter of tunl0, ...)
    remote        address               other nodes' endpoints for the selector sets (reads only)
    ipsets        address               create and update the owned sets
    iptables      ipsets                owned chains and jump rules (the rules name the sets)
    stale-ipsets  iptables              destroy sets no rule refers to any more
    routes        links, link-sysctl,   owned routes, VXLAN neighbours and FDB: no traffic is
                  iptables              routed to or through the node before its filter is in
    bird          routes                BIRD's config; started or reconfigured (advertises blocks)
    files         every part but remote installed files: each role's (sysctl.d, CNI conflist, ...)
                                        from its shared file, the cluster files, the plugins
    bundle        every part but remote the bundle copy under <root>/etc/calicc/bundle

A failed part marks every part that depends on it, directly or not, "skipped (because X failed)".
Parts that do not depend on the failure still run: they only prepare (devices, sysctls, sets, the
filter), so their running adds nothing that sends traffic somewhere new, and what makes the
bundle current (routes, BIRD, the CNI files and the bundle copy the CNI plugin reads) never runs
on top of a failure. The bundle copy is the last part and is swapped in as one tree, so the
installed bundle is always the last one fully applied. `remote` is the one part nothing depends
on: it changes nothing, and when its source fails the sets keep the members it last read
(agent/remote.py), so a Kubernetes API outage reports an error without holding back a bundle.

Each part is atomic on its own (one restore transaction, one netlink call per object, files by
rename). The desired ipsets and iptables include the node's live endpoints (agent/endpoints.py),
so running pods keep their chains, dispatch rules and selector-set memberships; the selector and
named-port sets also hold the other nodes' pods (agent/remote.py: the Kubernetes API with a
kubeconfig, else peer endpoint records). A Reconciler kept by the running agent skips
`iptables-save` while nothing changed (agent/drift.py) and reads ipsets over netlink, so its
no-op reconcile runs no command at all.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute

from calicc.agent import AgentError, ipsets, iptables
from calicc.agent.autodetect import check_node_addresses
from calicc.agent.bird import reconcile_bird
from calicc.agent.bundle import Bundle, installed_node, load_bundle
from calicc.agent.cni.install import install_plugins
from calicc.agent.drift import make_watch, nft_generation
from calicc.agent.endpoints import Endpoints, Fingerprint, fingerprint, load_endpoints, state_dir
from calicc.agent.files import replace_tree, under, write_if_changed
from calicc.agent.links import ensure_link
from calicc.agent.neigh import reconcile_l2
from calicc.agent.netlink import IPRoute as IPRouteT
from calicc.agent.remote import Remote, conflist_kubeconfig, runtime_sets
from calicc.agent.routes import reconcile_routes
from calicc.agent.runner import Runner
from calicc.agent.services import ServiceSource
from calicc.agent.sysctl import PROC_SYS, apply_sysctls
from calicc.contract.endpoint import with_endpoints
from calicc.contract.host import with_host
from calicc.contract.names import BUNDLE_DIR, CONFLIST, IP6TABLES_FILE, IPTABLES_FILE, STATE_DIR

MEMO_FILE = f"{STATE_DIR}/agent/iptables-memo.json"
MEMO_FILE_V6 = f"{STATE_DIR}/agent/ip6tables-memo.json"
BUNDLE_COPY = BUNDLE_DIR.lstrip("/")  # relative to --root, as reports show it


@dataclass(frozen=True)
class Options:
    """How the agent runs: its root, and lab/test switches."""

    root: Path = Path("/")
    allow_tunnel_standin: bool = False
    check_address: bool = True
    proc_sys: Path = PROC_SYS
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    kubeconfig: Path | None = None  # cluster-wide pods for the selector sets (agent/remote.py)
    node: str | None = None  # the node name bundles must be for (None: the installed one's)


PREPARE = ("address", "sysctl", "links", "link-sysctl", "ipsets", "iptables", "stale-ipsets")
DEPENDS: dict[str, tuple[str, ...]] = {
    "address": (),
    "sysctl": ("address",),
    "links": ("sysctl",),
    "link-sysctl": ("links",),
    "remote": ("address",),
    "ipsets": ("address",),
    "iptables": ("ipsets",),
    "stale-ipsets": ("iptables",),
    "routes": ("links", "link-sysctl", "iptables"),
    "bird": ("routes",),
    "files": (*PREPARE, "routes", "bird"),
    "bundle": (*PREPARE, "routes", "bird", "files"),
}
MAX_ERROR = 1500  # characters of one part's error in the report


@dataclass
class ApplyResult:
    """What one reconcile did: parts applied, changes, failed parts' errors, skipped parts."""

    changes: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # part -> the failed part it needs
    applied: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Return whether every part succeeded."""
        return not self.errors

    def blocker(self, part: str) -> str | None:
        """Return the failed part `part` depends on (through skipped ones), if any."""
        for dep in DEPENDS[part]:
            if dep in self.errors:
                return dep
            if dep in self.skipped:
                return self.skipped[dep]
        return None

    def lines(self) -> list[str]:
        """Return one line per change, per failed part and per skipped part."""
        out = [f"{part}: {c}" for part, cs in self.changes.items() for c in cs]
        out += [f"error: {part}: {msg}" for part, msg in self.errors.items()]
        return out + [f"skipped: {p} (because {x} failed)" for p, x in self.skipped.items()]

    def report(self) -> dict[str, object]:
        """Return the machine-readable report (`calicc apply --json`)."""
        return {
            "changed": bool(self.changes),
            "changes": self.changes,
            "applied": self.applied,
            "failed": self.errors,
            "skipped": {p: f"because {x} failed" for p, x in self.skipped.items()},
        }


def describe(exc: Exception) -> str:
    """Return a part's error as one report entry (an unexpected one names its type)."""
    text = str(exc) if isinstance(exc, AgentError | OSError) else f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


def load_memo(path: Path) -> iptables.Memo:
    """Read the iptables memo (an empty one when missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return iptables.Memo(chains=dict(data["chains"]), rules=dict(data["rules"]))
    except (OSError, ValueError, KeyError, TypeError):
        return iptables.Memo()


def save_memo(path: Path, memo: iptables.Memo) -> None:
    """Write the iptables memo."""
    data = {"chains": memo.chains, "rules": memo.rules}
    write_if_changed(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


class Reconciler:
    """Applies bundles to the network namespace it runs in; keeps its command log and memo."""

    def __init__(self, options: Options, runner: Runner | None = None) -> None:
        self.options = options
        self.runner = runner if runner is not None else Runner()
        self.memo_path = under(options.root, MEMO_FILE)
        self.memo = load_memo(self.memo_path)
        self.memo6_path = under(options.root, MEMO_FILE_V6)
        self.memo6 = load_memo(self.memo6_path)
        self.stale_sets: list[str] = []
        self.watch = make_watch()
        self.endpoints: tuple[tuple[Fingerprint, str, object], Endpoints] | None = None
        self.remote = Remote(kubeconfig=options.kubeconfig)
        self.services = ServiceSource()

    def parts(self, ipr: IPRouteT) -> list[tuple[str, Callable[[Bundle], list[str]]]]:
        """Return the parts of a reconcile, in order (DEPENDS says which need which)."""
        return [
            ("address", lambda b: self.check_address(ipr, b)),
            ("sysctl", lambda b: self.sysctls(b, skip_missing=True)),
            ("links", lambda b: self.links(ipr, b)),
            ("link-sysctl", lambda b: self.sysctls(b, skip_missing=False)),
            ("remote", self.remote_endpoints),
            ("ipsets", self.ipsets),
            ("iptables", self.iptables),
            ("stale-ipsets", lambda b: self.stale_ipsets()),
            ("routes", lambda b: self.routes(ipr, b)),
            ("bird", self.bird),
            ("files", self.files),
            ("bundle", self.bundle_copy),
        ]

    def reconcile(self, bundle: Bundle) -> ApplyResult:
        """Run every part whose dependencies succeeded; record failures and skipped parts."""
        start = time.perf_counter()
        result = ApplyResult()
        with IPRoute() as ipr:
            for name, part in self.parts(ipr):
                blocker = result.blocker(name)
                if blocker is not None:
                    result.skipped[name] = blocker
                    continue
                try:
                    done = part(bundle)
                except Exception as exc:  # one part's failure must not end the reconcile
                    result.errors[name] = describe(exc)
                    continue
                result.applied.append(name)
                if done:
                    result.changes.setdefault(name, []).extend(done)
        result.seconds = time.perf_counter() - start
        return result

    def check_address(self, ipr: IPRouteT, bundle: Bundle) -> list[str]:
        """Require the detected addresses to be the compiled ones (unless switched off).

        Each family the node has an address of (agent/autodetect.py: `address` with
        autodetection_method, `address_v6` with autodetection_method_v6); both are checked
        and every mismatch reported, before any part applies anything.
        """
        if self.options.check_address:
            check_node_addresses(ipr, bundle.manifest.node)
        return []

    def sysctls(self, bundle: Bundle, skip_missing: bool) -> list[str]:
        """Set the manifest's sysctls."""
        wanted = bundle.manifest.sysctls
        changed = apply_sysctls(wanted, self.options.proc_sys, skip_missing=skip_missing)
        return [f"{key} = {wanted[key]}" for key in changed]

    def links(self, ipr: IPRouteT, bundle: Bundle) -> list[str]:
        """Create and configure the tunnel devices."""
        changes: list[str] = []
        for link in bundle.manifest.links:
            parent = link.parent or bundle.manifest.node.interface
            changes += ensure_link(ipr, link, parent, self.options.allow_tunnel_standin)
        return changes

    def endpoint_dir(self, bundle: Bundle) -> Path:
        """Return the CNI plugin's state directory (where its endpoint records are)."""
        return state_dir(self.options.root, bundle.text(CONFLIST) if bundle.has(CONFLIST) else None)

    def live_endpoints(self, bundle: Bundle) -> Endpoints:
        """Return the live endpoints, loaded again only when a record or the bundle changed."""
        directory = self.endpoint_dir(bundle)
        key = (fingerprint(directory), bundle.digest, self.remote.facts_key)
        if self.endpoints is None or self.endpoints[0] != key:
            live = load_endpoints(directory, bundle.manifest, self.remote.current)
            self.endpoints = (key, live)
        return self.endpoints[1]

    def remote_endpoints(self, bundle: Bundle) -> list[str]:
        """Read the other nodes' endpoints (Kubernetes API or peer records) for the ipsets."""
        conflist = bundle.text(CONFLIST) if bundle.has(CONFLIST) else None
        conf = conflist_kubeconfig(self.options.root, conflist)
        self.remote.refresh(bundle.manifest, bundle.digest, self.endpoint_dir(bundle), conf)
        return []

    def ipsets(self, bundle: Bundle) -> list[str]:
        """Create and update the owned sets in one restore session (none when nothing differs).

        Runtime sets hold the node's live endpoints and the other nodes' (agent/remote.py).
        """
        current = ipsets.read_sets(self.runner)  # before the records: see agent/endpoints.py
        local = self.remote.local_members(self.live_endpoints(bundle), bundle.manifest)
        have = {name: state.members for name, state in current.items()}
        runtime = runtime_sets(local, self.remote.members, have)
        desired = ipsets.desired_sets(bundle.manifest.ipsets, runtime)
        lines, self.stale_sets = ipsets.diff_sets(desired, current)
        if lines:
            ipsets.restore(self.runner, lines)
        return ipsets.summarize(lines)

    def stale_ipsets(self) -> list[str]:
        """Destroy the owned sets the bundle no longer has, once no rule refers to them."""
        if not self.stale_sets:
            return []
        free = ipsets.unreferenced(self.runner, self.stale_sets)
        if free:
            ipsets.restore(self.runner, [f"destroy {name}" for name in free])
        return [f"ipset {name}: destroyed (stale)" for name in free]

    def iptables(self, bundle: Bundle) -> list[str]:
        """Write the owned chains and jump rules that differ, in one transaction.

        Skipped without running a command while the nftables generation, the bundle and the
        endpoint records are unchanged since iptables last matched (agent/drift.py).
        """
        generation = nft_generation() if self.watch.enabled else None
        records = fingerprint(self.endpoint_dir(bundle))
        key = (generation, bundle.digest, records, self.remote.facts_key)
        if self.watch.unchanged(key):
            return []
        self.watch.settled(None)
        current = iptables.read_ruleset(self.runner)  # before the records: see agent/endpoints.py
        text = bundle.text(IPTABLES_FILE) if bundle.has(IPTABLES_FILE) else ""
        desired = with_endpoints(text, self.live_endpoints(bundle).rules)
        desired = with_host(desired, bundle.manifest.host)  # host endpoints (contract/host.py)
        changes = iptables.reconcile_iptables(
            self.runner, desired, current, bundle.manifest.jump_rules, self.memo
        )
        if changes:
            save_memo(self.memo_path, self.memo)
        changes += self.ip6tables(bundle)
        self.watch.settled(None if changes else key)
        return changes

    def ip6tables(self, bundle: Bundle) -> list[str]:
        """Write the owned IPv6 chains and jump rules that differ (ip6tables-restore).

        Run when the bundle has IPv6 rules, or an earlier one had (the memo is not empty: its
        chains are removed as stale), so an IPv4-only node runs no ip6tables command. The live
        pods with an IPv6 address keep their endpoint chains and dispatch rules (agent/endpoints.py
        `rules_v6`, merged as in iptables); the jump rules are cluster.json's whose chain the file
        declares.
        """
        has = bundle.has(IP6TABLES_FILE)
        if not has and not (self.memo6.chains or self.memo6.rules):
            return []
        text = bundle.text(IP6TABLES_FILE) if has else ""
        if has:  # host endpoints of ip6tables, neighbour discovery first (contract/host.py)
            text = with_host(text, bundle.manifest.host, family=6)
        jumps = iptables.family_jumps(bundle.manifest.jump_rules, iptables.parse_rules(text))
        current = iptables.read_ruleset(self.runner, family=6)
        if has:  # the kernel's rules first, then the records (see agent/endpoints.py)
            text = with_endpoints(text, self.live_endpoints(bundle).rules_v6)
        changes = iptables.reconcile_iptables(
            self.runner, text, current, jumps, self.memo6, family=6
        )
        if not has:
            self.memo6 = iptables.Memo()
        if changes or not has:
            save_memo(self.memo6_path, self.memo6)
        return changes

    def routes(self, ipr: IPRouteT, bundle: Bundle) -> list[str]:
        """Reconcile the owned routes, then VXLAN's neighbours and FDB entries."""
        m = bundle.manifest
        changes = reconcile_routes(ipr, m.routes, m.route_protocol)
        return changes + reconcile_l2(ipr, m.links, m.neighbors, m.fdb)

    def bird(self, bundle: Bundle) -> list[str]:
        """Install BIRD's config and start or reconfigure it when needed."""
        includes = self.service_includes(bundle)
        return reconcile_bird(self.runner, bundle, self.options.root, self.options.env, includes)

    def service_includes(self, bundle: Bundle) -> dict[str, str]:
        """Return BIRD's includes of Local Service routes (agent/services.py), if it has any."""
        ips = bundle.manifest.bird.services
        if ips is None:
            return {}
        conflist = bundle.text(CONFLIST) if bundle.has(CONFLIST) else None
        conf = self.options.kubeconfig or conflist_kubeconfig(self.options.root, conflist)
        return self.services.refresh(ips, bundle.manifest.node.name, conf)

    def files(self, bundle: Bundle) -> list[str]:
        """Install the bundle's files at their places (bird.conf: the bird part) and the plugins.

        A role (conflist, iptables rules, sysctl file, routes script) is installed at its place
        with the bytes of the shared cluster file node.json names for it. A file an earlier
        bundle installed that this one no longer lists stays in place (nothing is removed).
        """
        root = self.options.root
        changes = []
        for rel, entry in sorted(bundle.manifest.files.items()):
            target = entry.install if rel != bundle.manifest.bird.config else None
            if target and write_if_changed(under(root, target), bundle.data(rel)):
                changes.append(f"{target}: installed")
        return changes + [f"{path}: installed" for path in install_plugins(root)]

    def bundle_copy(self, bundle: Bundle) -> list[str]:
        """Swap in the bundle's copy for the CNI plugin, in one rename (the last part)."""
        if replace_tree(under(self.options.root, BUNDLE_COPY), bundle.tree()):
            return [f"{BUNDLE_COPY}: installed bundle {bundle.digest[:19]}"]
        return []


def expected_node(options: Options) -> str | None:
    """Return the node name a bundle must be for: --node, else the installed bundle's node."""
    if options.node is not None:
        return options.node
    return installed_node(under(options.root, BUNDLE_COPY))


def installed_bundle(options: Options) -> Bundle:
    """Return the installed bundle copy (the last one fully applied), verified like any bundle."""
    return load_bundle(under(options.root, BUNDLE_COPY), expected_node(options))
