"""IBM Cloud Private: config.yaml plus its Ansible `hosts` inventory, read as one cluster.

config.yaml is accepted as written: its network keys map onto the cluster model, every other
ICP key is ignored, and a misspelt network key is an error with a did-you-mean. The hosts file
(INI groups such as [master], [worker], [proxy], [management]) supplies the nodes: a host in
several groups is one node, labelled with each group's role. Host variables may add what ICP
lacks: calicc_prefix (subnet prefix length), calicc_name, calicc_interface, calicc_as_number,
calicc_route_reflector_cluster_id, calicc_max_pods; [all:vars] or [group:vars] set defaults.
Values such as `can-reach={{ groups['master'][0] }}` are resolved against those groups (that
form only: no template engine runs on the input).
"""

from __future__ import annotations

import contextlib
import difflib
import re
import shlex
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import yaml

from calicc.compiler.build import Inputs, validate_source
from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.load import Loc, Source, read_input, read_yaml
from calicc.contract.text import cut

# ICP key -> cluster model key (aliases the model also accepts as written).
NETWORK_KEYS = {
    "network_type": "network_type",
    "network_cidr": "network_cidr",
    "service_cluster_ip_range": "service_cluster_ip_range",
    "calico_ipip_mode": "calico_ipip_mode",
    "calico_ipip_enabled": "calico_ipip_enabled",
    "calico_tunnel_mtu": "calico_tunnel_mtu",
    "calico_ip_autodetection_method": "calico_ip_autodetection_method",
}
ICP_DEFAULTS = {"network_cidr": "10.1.0.0/16", "service_cluster_ip_range": "10.0.0.1/24"}
HOST_VARS = {
    "calicc_name": "name",
    "calicc_interface": "interface",
    "calicc_as_number": "as_number",
    "calicc_route_reflector_cluster_id": "route_reflector_cluster_id",
    "calicc_max_pods": "max_pods",
}
INT_VARS = {"as_number", "max_pods"}


@dataclass
class Host:
    """One inventory host: its address, groups, variables and first line."""

    address: str
    line: int
    groups: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class Inventory:
    """An Ansible INI inventory: hosts in file order, group members, group variables."""

    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, str]] = field(default_factory=dict)


def _host_line(inventory: Inventory, group: str, text: str, number: int, path: Path) -> None:
    try:
        words = shlex.split(text, comments=True)
    except ValueError as exc:
        raise SpecError([Problem(str(path), number, None, f"[{group}]", str(exc))]) from exc
    if not words:
        return
    name, pairs = words[0], words[1:]
    variables = dict(p.split("=", 1) for p in pairs if "=" in p)
    address = variables.pop("ansible_host", name)
    host = inventory.hosts.setdefault(name, Host(address=address, line=number))
    if "ansible_host" not in variables and address != name:
        host.address = address
    if name != address and "calicc_name" not in variables:
        variables.setdefault("calicc_name", name)
    host.variables.update(variables)
    if group not in host.groups:
        host.groups.append(group)
    inventory.groups.setdefault(group, []).append(name)


def parse_hosts(path: Path) -> Inventory:
    """Parse an Ansible INI inventory ([group], [group:vars]; [group:children] is ignored)."""
    text = read_input(path)
    inventory = Inventory()
    section = "ungrouped"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section.endswith(":vars"):
            key, _, value = line.partition("=")
            inventory.group_vars.setdefault(section[:-5], {})[key.strip()] = value.strip()
        elif not section.endswith(":children"):
            _host_line(inventory, section, line, number, path)
    if not inventory.hosts:
        raise SpecError([Problem(str(path), None, None, "", "the inventory lists no hosts")])
    return inventory


def _host_vars(inventory: Inventory, host: Host) -> dict[str, str]:
    merged = dict(inventory.group_vars.get("all", {}))
    for group in host.groups:
        merged.update(inventory.group_vars.get(group, {}))
    merged.update(host.variables)
    return merged


def _node(inventory: Inventory, host: Host) -> dict[str, Any]:
    variables = _host_vars(inventory, host)
    prefix = variables.get("calicc_prefix", "32")
    node: dict[str, Any] = {"name": host.address, "address": f"{host.address}/{prefix}"}
    for var, key in HOST_VARS.items():
        if var in variables:
            value = variables[var]
            node[key] = int(value) if key in INT_VARS and value.isdigit() else value
    node["labels"] = {f"node-role.kubernetes.io/{g}": "true" for g in sorted(host.groups)}
    return node


GROUP_REF = re.compile(
    r"\{\{\s*groups(?:\[\s*(?P<q>['\"])(?P<quoted>[^'\"]{1,100})(?P=q)\s*\]|\.(?P<dotted>\w{1,100}))"
    r"\s*\[\s*(?P<index>-?\d{1,6})\s*\]\s*\}\}"
)


def _render(value: object, groups: dict[str, list[str]], where: Problem) -> object:
    """Resolve `{{ groups['GROUP'][N] }}` (what ICP writes), and nothing else.

    A full template engine would run whatever the file says (`{{ 'x' * 10**11 }}` exhausts
    memory even in jinja2's sandbox), so any other expression is refused.
    """
    if not isinstance(value, str) or "{{" not in value:
        return value

    def resolve(match: re.Match[str]) -> str:
        group = match["quoted"] or match["dotted"]
        members = groups.get(group, [])
        index = int(match["index"])
        if not -len(members) <= index < len(members):
            known = ", ".join(
                f"{g} ({len(m)} host{'s' * (len(m) != 1)})" for g, m in sorted(groups.items())
            )
            reason = f"group {cut(group)!r} has no host {index}; inventory groups are: {known}"
            raise _unresolved(where, value, reason)
        return members[index]

    resolved = GROUP_REF.sub(resolve, value)
    if "{{" in resolved or "{%" in resolved:
        raise _unresolved(where, value, "only {{ groups['GROUP'][N] }} is resolved here")
    return resolved


def _unresolved(where: Problem, value: str, reason: str) -> SpecError:
    message = f"cannot resolve {cut(value)!r}: {reason}"
    return SpecError([Problem(where.file, where.line, where.column, where.field, message)])


def _unknown_network_keys(config: Source) -> list[Problem]:
    problems = []
    for key in config.data:
        if key in NETWORK_KEYS or not str(key).startswith(("calico_", "network_")):
            continue
        close = difflib.get_close_matches(str(key), list(NETWORK_KEYS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(
            config.problem(
                (key,), f"unknown ICP network key; {hint}valid: " + ", ".join(sorted(NETWORK_KEYS))
            )
        )
    return problems


def _cluster_data(config: Source, inventory: Inventory) -> dict[str, Any]:
    groups = {g: [inventory.hosts[h].address for h in hs] for g, hs in inventory.groups.items()}
    name = str(config.data.get("cluster_name", "mycluster"))
    data: dict[str, Any] = {"name": name}
    for icp_key, key in NETWORK_KEYS.items():
        value = config.data.get(icp_key, ICP_DEFAULTS.get(icp_key))
        if value is not None:
            data[key] = _render(value, groups, config.problem((icp_key,), ""))
    if "service_cluster_ip_range" in data:  # ICP writes a host address: 10.0.0.1/24
        with contextlib.suppress(ValueError):  # else the model reports it, located
            data["service_cluster_ip_range"] = str(
                IPv4Network(str(data["service_cluster_ip_range"]), strict=False)
            )
    data["nodes"] = [_node(inventory, host) for host in inventory.hosts.values()]
    return data


def load_icp(config_path: Path, hosts_path: Path) -> Inputs:
    """Read an ICP config.yaml and its hosts inventory as one validated cluster."""
    config = read_yaml(config_path)
    if not isinstance(config.data, dict):
        raise SpecError([config.problem((), "expected the ICP config.yaml mapping")])
    problems = _unknown_network_keys(config)
    if problems:
        raise SpecError(problems)
    inventory = parse_hosts(hosts_path)
    data = _cluster_data(config, inventory)
    lines = {loc: pos for loc, pos in config.lines.items() if loc and loc[0] in NETWORK_KEYS}
    lines[("name",)] = config.lines.get(("cluster_name",), (1, 1))
    files: dict[Loc, str] = {}
    for index, host in enumerate(inventory.hosts.values()):
        lines[("nodes", index)] = (host.line, 1)
        files[("nodes", index)] = str(hosts_path)
    source = Source(path=config_path, data=data, lines=lines, files=files)
    return validate_source(source, (config_path, hosts_path))


def icp_cluster_yaml(config_path: Path, hosts_path: Path) -> str:
    """Return a cluster.yaml equivalent to an ICP config.yaml and hosts, in calicc's own keys.

    For moving off the ICP files, or for tools that take a cluster.yaml (calicc lab).
    """
    spec = load_icp(config_path, hosts_path).spec
    data = spec.model_dump(mode="json", exclude_defaults=True, exclude={"calico_ipip_enabled"})
    # ipip_mode also when it is the default: say what ICP said, right after the pool
    data = {k: v for k, v in data.items() if k != "nodes"} | {
        "ipip_mode": spec.ipip_mode.value,
        "nodes": data["nodes"],
    }
    header = (
        f"# Converted by `calicc convert` from {config_path.name} and {hosts_path.name}.\n"
        "# Keep cluster.lock.yaml beside this file so blocks stay where they are.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False)
