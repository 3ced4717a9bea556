"""The one jinja2 environment, and rendering of the cluster part and a node's files into memory."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import jinja2

from calicc.compiler.emit import dump_json
from calicc.compiler.errors import RenderError
from calicc.compiler.filters import FILTERS, one_line
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.targets.bird import BgpView, bird_view, node_sessions
from calicc.compiler.targets.cluster import (
    index_json,
    nodes_text,
    policy_json,
    routes_script_view,
    settings_json,
)
from calicc.compiler.targets.cni import conflist, kubeconfig_text
from calicc.compiler.targets.ip6tables import ip6tables_text
from calicc.compiler.targets.ipset import IPSETS_TEMPLATE, ipsets_view
from calicc.compiler.targets.iptables import IPTABLES_TEMPLATE, iptables_view
from calicc.compiler.targets.manifest import file_entries, manifest_text
from calicc.compiler.targets.shared import SharedFile, shared_plan
from calicc.compiler.targets.sysctl import sysctl_view
from calicc.contract.manifest import FileEntry
from calicc.contract.names import (
    BIRD_CONFIG,
    CLUSTER_INDEX,
    CLUSTER_IPSETS,
    CLUSTER_KUBECONFIG,
    CLUSTER_POLICY,
    CLUSTER_ROUTES,
    CLUSTER_SETTINGS,
    CONFLIST,
    IP6TABLES_FILE,
    IPTABLES_FILE,
    MANIFEST,
    NODE_BUILT_FROM,
    NODES_TABLE,
    SYSCTL_FILE,
)

Renderer = Callable[[ClusterPlan, SharedFile], str]


@cache
def make_env() -> jinja2.Environment:
    """Return the only template environment: strict, whitespace-disciplined, no autoescape."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("calicc", "templates"),  # package data in the wheel
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,  # templates are package data: no stat of each one per render
        finalize=one_line,
    )
    env.filters.update(FILTERS)
    return env


def render_template(name: str, context: dict[str, object]) -> str:
    """Render one template; errors name the template and its line."""
    try:
        return make_env().get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{name}:{exc.lineno}: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{name}: {exc.message}") from exc
    except RenderError as exc:
        raise RenderError(f"{name}: {exc}") from exc


@lru_cache(maxsize=1 << 16)
def render_session(view: BgpView) -> str:
    """Render one `protocol bgp` block (a full mesh repeats each peer's block on every node)."""
    return render_template("bird/session.conf.j2", {"s": view})


def render_bird(cluster: ClusterPlan, node: NodePlan) -> str:
    """Render the node's bird.conf."""
    view = bird_view(cluster, node)
    view["sessions"] = [render_session(s) for s in node_sessions(node)]
    return render_template("bird/bird.conf.j2", view)


def _iptables(cluster: ClusterPlan, shared: SharedFile) -> str:
    return render_template(IPTABLES_TEMPLATE, iptables_view(cluster, shared.encaps))


def _ip6tables(cluster: ClusterPlan, shared: SharedFile) -> str:
    return ip6tables_text(cluster, shared.encaps)  # no template yet: see ip6tables_text


def _sysctl(cluster: ClusterPlan, shared: SharedFile) -> str:
    view = sysctl_view(cluster, shared.devices, shared.ipv6)
    return render_template("sysctl/99-calicc.conf.j2", view)


def _conflist(cluster: ClusterPlan, shared: SharedFile) -> str:
    return dump_json(conflist(cluster, shared.mtu))  # JSON, no template


SHARED_RENDERERS: dict[str, Renderer] = {
    IPTABLES_FILE: _iptables,
    IP6TABLES_FILE: _ip6tables,
    SYSCTL_FILE: _sysctl,
    CONFLIST: _conflist,
}


@lru_cache(maxsize=2)
def render_cluster(cluster: ClusterPlan) -> dict[str, str]:
    """Render the cluster part, once per build: {path relative to the tree: text}."""
    files = {
        CLUSTER_SETTINGS: settings_json(cluster),
        CLUSTER_ROUTES: render_template("cluster/routes.sh.j2", routes_script_view(cluster)),
        NODES_TABLE: nodes_text(cluster),
        CLUSTER_POLICY: policy_json(cluster),
        CLUSTER_IPSETS: render_template(IPSETS_TEMPLATE, ipsets_view(cluster)),
    }
    for path, shared in shared_plan(cluster).files.items():
        files[path] = SHARED_RENDERERS[shared.role](cluster, shared)
    kubeconfig = kubeconfig_text(cluster)
    if kubeconfig is not None:
        files[CLUSTER_KUBECONFIG] = kubeconfig
    return {**files, CLUSTER_INDEX: index_json(cluster, files)}


BUILT_FROM: dict[str, Callable[[ClusterPlan], str]] = {CLUSTER_SETTINGS: settings_json}


@lru_cache(maxsize=2)
def cluster_entries(cluster: ClusterPlan) -> dict[str, FileEntry]:
    """Return node.json's entries (digest, install path) of the cluster settings it names.

    Rendered on their own, not through render_cluster: nodes are rendered while the cluster
    part is (compiler/write.py).
    """
    return file_entries({rel: BUILT_FROM[rel](cluster) for rel in NODE_BUILT_FROM})


def render_node(cluster: ClusterPlan, node: NodePlan) -> dict[str, str]:
    """Render the node's own files: {path relative to nodes/<node>/: text}.

    bird.conf, then node.json, which lists bird.conf's digest, the cluster settings it was
    built from and the shared file of each role (compiler/targets/shared.py).
    """
    bird = render_bird(cluster, node)
    sources = shared_plan(cluster).sources[node.name]
    manifest = manifest_text(cluster, node, {BIRD_CONFIG: bird}, cluster_entries(cluster), sources)
    return {BIRD_CONFIG: bird, MANIFEST: manifest}
