"""`calicc agent`: the reconcile loop.

Repairs drift each interval, picks up new bundles, serves the CNI socket and metrics, and ends
cleanly on SIGTERM or SIGINT. Every interval loads the bundle again (so a bundle changed on disk
is applied) and runs one reconcile with the same Reconciler, whose drift watch makes the no-op
case run no command (agent/drift.py). Each change is logged on its own line: "applied: ..." for
a new bundle, "repaired drift: ..." otherwise, naming the part and what was done (e.g.
"repaired drift: routes: route 10.244.1.64/26: added").
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from agent import AgentError
from agent.apply import Options, Reconciler
from agent.bundle import Bundle, load_bundle
from agent.drift import FULL_EVERY
from agent.metrics import Metrics, write_textfile
from agent.status import block_use, node_allocations

log = logging.getLogger("calicc.agent")


@dataclass
class Loop:
    """One agent: its bundle directory, interval, reconciler and metrics."""

    bundle_dir: Path
    interval: float
    reconciler: Reconciler
    metrics: Metrics
    metrics_file: Path | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    applied: str | None = None

    def once(self) -> None:
        """Run one reconcile (loading the bundle again, so a new one is picked up)."""
        try:
            bundle = load_bundle(self.bundle_dir)
        except AgentError as exc:
            log.error("bundle: %s (keeping the node as it is)", exc)
            self.metrics.errors += 1
            return
        new = bundle.digest != self.applied
        if new:
            log.info("bundle %s found in %s: applying it", bundle.digest[:19], self.bundle_dir)
        result = self.reconciler.reconcile(bundle)
        runner = self.reconciler.runner
        self.metrics.observe(result, repaired=not new, commands=len(runner.reads + runner.writes))
        runner.reads.clear()  # the log is for one-shot applies; the loop only counts
        runner.writes.clear()
        verb = "applied" if new else "repaired drift"
        for line in result.lines():
            (log.error if line.startswith("error:") else log.info)("%s: %s", verb, line)
        if result.ok and new:
            self.applied = bundle.digest
            self.metrics.bundles += 1
            log.info("bundle %s applied in %.3fs", bundle.digest[:19], result.seconds)
        self.update_ipam(bundle)
        if self.metrics_file is not None:
            write_textfile(self.metrics_file, self.metrics)

    def update_ipam(self, bundle: Bundle) -> None:
        """Refresh the IPAM gauges from the CNI plugin's state."""
        try:
            allocs = node_allocations(self.reconciler.options.root, bundle.manifest)
        except Exception as exc:  # the CNI's state is optional to the loop
            log.warning("IPAM state unreadable: %s", exc)
            return
        blocks = [b.cidr for b in bundle.manifest.blocks]
        self.metrics.ipam = {b: (u, s) for b, u, s in block_use(blocks, allocs)}

    def run(self) -> None:
        """Reconcile every interval until stopped."""
        while not self.stop.is_set():
            self.once()
            self.stop.wait(self.interval)
        log.info("stopped")


def handle_signals(stop: threading.Event) -> None:
    """Make SIGTERM and SIGINT end the loop after the current reconcile."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def make_loop(
    bundle_dir: Path,
    interval: float,
    options: Options,
    metrics_file: Path | None,
    full_read_every: int = FULL_EVERY,
) -> Loop:
    """Return a loop with a fresh reconciler (reading iptables in full every N intervals)."""
    stop = threading.Event()
    reconciler = Reconciler(options)
    reconciler.watch.full_every = full_read_every
    return Loop(bundle_dir, interval, reconciler, Metrics(), metrics_file, stop)
