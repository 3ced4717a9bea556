"""Prometheus metrics of the agent, in the text exposition format (no client library needed).

Served on a localhost port and/or written atomically to a textfile (node_exporter's textfile
collector reads it). The metrics:

- calicc_agent_reconciles_total (counter): reconciles run, one per interval.
- calicc_agent_repairs_total (counter): reconciles that repaired drift (changed anything while
  the bundle was the one already applied); each repair is also logged.
- calicc_agent_errors_total (counter): failed parts of reconciles, and unreadable bundles.
- calicc_agent_bundles_applied_total (counter): new bundles applied successfully.
- calicc_agent_commands_total (counter): external commands (iptables-save, ipset restore,
  birdc...) the reconciles ran; it stays flat while nothing drifts.
- calicc_agent_reconcile_seconds (summary: _sum, _count) and
  calicc_agent_last_reconcile_seconds (gauge): how long reconciles take.
- calicc_ipam_block_addresses_used{block} and calicc_ipam_block_addresses{block} (gauges):
  IPAM use of each of the node's blocks, from the CNI plugin's state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from calicc.agent.apply import ApplyResult
from calicc.agent.files import write_if_changed


@dataclass
class Metrics:
    """Counters and gauges of one agent."""

    reconciles: int = 0
    repairs: int = 0
    errors: int = 0
    bundles: int = 0
    commands: int = 0
    duration_sum: float = 0.0
    last_duration: float = 0.0
    ipam: dict[IPv4Network | IPv6Network, tuple[int, int]] = field(
        default_factory=dict
    )  # used, size
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, result: ApplyResult, repaired: bool, commands: int = 0) -> None:
        """Count one reconcile: its duration, errors, commands, and whether it repaired drift."""
        with self.lock:
            self.reconciles += 1
            self.commands += commands
            self.errors += len(result.errors)
            self.repairs += int(repaired and bool(result.changes))
            self.duration_sum += result.seconds
            self.last_duration = result.seconds

    def render(self) -> str:
        """Return the metrics in the Prometheus text format."""
        with self.lock:
            lines = [
                *_metric("calicc_agent_reconciles_total", "counter", self.reconciles),
                *_metric("calicc_agent_repairs_total", "counter", self.repairs),
                *_metric("calicc_agent_errors_total", "counter", self.errors),
                *_metric("calicc_agent_bundles_applied_total", "counter", self.bundles),
                *_metric("calicc_agent_commands_total", "counter", self.commands),
                "# TYPE calicc_agent_reconcile_seconds summary",
                f"calicc_agent_reconcile_seconds_sum {self.duration_sum:.6f}",
                f"calicc_agent_reconcile_seconds_count {self.reconciles}",
                *_metric("calicc_agent_last_reconcile_seconds", "gauge", self.last_duration),
                "# TYPE calicc_ipam_block_addresses_used gauge",
                *(
                    f'calicc_ipam_block_addresses_used{{block="{b}"}} {u}'
                    for b, (u, _) in sorted(self.ipam.items())
                ),
                "# TYPE calicc_ipam_block_addresses gauge",
                *(
                    f'calicc_ipam_block_addresses{{block="{b}"}} {s}'
                    for b, (_, s) in sorted(self.ipam.items())
                ),
            ]
        return "\n".join(lines) + "\n"


def _metric(name: str, kind: str, value: float) -> list[str]:
    return [f"# TYPE {name} {kind}", f"{name} {value:g}"]


def write_textfile(path: Path, metrics: Metrics) -> None:
    """Write the metrics to `path` (atomically)."""
    write_if_changed(path, metrics.render().encode())


def serve(metrics: Metrics, port: int) -> ThreadingHTTPServer:
    """Serve /metrics on 127.0.0.1:`port` from a daemon thread; return the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.render().encode()
            self.send_response(200 if self.path.rstrip("/") in ("", "/metrics") else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="calicc-metrics", daemon=True).start()
    return server
