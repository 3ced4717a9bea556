"""`calicc agent`: the reconcile loop.

Repairs drift each interval, picks up new bundles, serves the CNI socket and metrics, and ends
cleanly on SIGTERM or SIGINT. With a Kubernetes API it watches pods and namespaces
(agent/kube_watch.py) and every event wakes the loop at once, so a relabelled pod or namespace
gets its chains and set memberships moments after the event, not at the next interval.

Every interval loads the bundle again (so a bundle changed on disk
is applied) and runs one reconcile with the same Reconciler, whose drift watch makes the no-op
case run no command (agent/drift.py). Each change is logged on its own line: "applied: ..." for
a new bundle, "repaired drift: ..." otherwise, naming the part and what was done (e.g.
"repaired drift: routes: route 10.244.1.64/26: added").

The last good state is kept: a bundle with a failed part is not recorded as applied, its
dependent parts are skipped (agent/apply.py), the installed bundle copy stays the last one fully
applied, and the bundle is retried the next interval. A bundle that does not even validate (a
push copying it, a corrupt file) changes nothing; the loop then keeps reconciling the installed
copy, so drift of the last good state is still repaired.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from calicc.agent import AgentError
from calicc.agent.apply import ApplyResult, Options, Reconciler, expected_node, installed_bundle
from calicc.agent.bundle import Bundle, load_bundle
from calicc.agent.drift import FULL_EVERY
from calicc.agent.metrics import Metrics, write_textfile
from calicc.agent.status import block_use, node_allocations

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
    wake: threading.Event = field(default_factory=threading.Event)
    applied: str | None = None

    def request_stop(self) -> None:
        """End the loop after the current reconcile (safe from a signal handler)."""
        self.stop.set()
        self.wake.set()

    def once(self) -> None:
        """Run one reconcile (loading the bundle again, so a new one is picked up)."""
        try:
            bundle = load_bundle(self.bundle_dir, expected_node(self.reconciler.options))
        except AgentError as exc:
            log.error("bundle: %s (nothing of it applied)", exc)
            self.metrics.errors += 1
            self.keep_last_good()
            return
        new = bundle.digest != self.applied
        if new:
            log.info("bundle %s found in %s: applying it", bundle.digest[:19], self.bundle_dir)
        result = self.reconcile(bundle, "applied" if new else "repaired drift", repaired=not new)
        if result.ok and new:
            self.applied = bundle.digest
            self.metrics.bundles += 1
            log.info("bundle %s applied in %.3fs", bundle.digest[:19], result.seconds)
        elif not result.ok:
            log.error(
                "bundle %s not fully applied (failed: %s); the installed bundle stays the last "
                "one fully applied; retrying in %gs",
                bundle.digest[:19],
                ", ".join(result.errors),
                self.interval,
            )
        self.update_ipam(bundle)

    def keep_last_good(self) -> None:
        """Reconcile the installed bundle copy (the last one fully applied), if there is one."""
        try:
            bundle = installed_bundle(self.reconciler.options)
        except AgentError as exc:
            log.warning("no installed bundle to keep the node at: %s", exc)
            return
        self.reconcile(bundle, "repaired drift (last good bundle)", repaired=True)
        self.update_ipam(bundle)

    def reconcile(self, bundle: Bundle, verb: str, repaired: bool) -> ApplyResult:
        """Run one reconcile of `bundle`, log its lines and count it."""
        result = self.reconciler.reconcile(bundle)
        runner = self.reconciler.runner
        self.metrics.observe(result, repaired=repaired, commands=len(runner.reads + runner.writes))
        runner.reads.clear()  # the log is for one-shot applies; the loop only counts
        runner.writes.clear()
        for line in result.lines():
            failed = line.startswith(("error:", "skipped:"))
            (log.error if failed else log.info)("%s: %s", verb, line)
        return result

    def update_ipam(self, bundle: Bundle) -> None:
        """Refresh the IPAM gauges from the CNI plugin's state, then write the metrics file."""
        self.update_gauges(bundle)
        if self.metrics_file is not None:
            write_textfile(self.metrics_file, self.metrics)

    def update_gauges(self, bundle: Bundle) -> None:
        """Refresh the IPAM gauges from the CNI plugin's state."""
        try:
            allocs = node_allocations(self.reconciler.options.root, bundle.manifest)
        except Exception as exc:  # the CNI's state is optional to the loop
            log.warning("IPAM state unreadable: %s", exc)
            return
        blocks = [b.cidr for b in bundle.manifest.blocks]
        self.metrics.ipam = {b: (u, s) for b, u, s in block_use(blocks, allocs)}

    def run(self) -> None:
        """Reconcile every interval, and at once after an API event, until stopped."""
        try:
            while not self.stop.is_set():
                self.once()
                self.wake.wait(self.interval)
                self.wake.clear()  # events during the wait are in the next reconcile's read
        finally:
            self.reconciler.remote.stop()
            self.reconciler.services.stop()
        log.info("stopped")


def handle_signals(stop: Callable[[], None]) -> None:
    """Make SIGTERM and SIGINT end the loop after the current reconcile."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


def make_loop(
    bundle_dir: Path,
    interval: float,
    options: Options,
    metrics_file: Path | None,
    full_read_every: int = FULL_EVERY,
) -> Loop:
    """Return a loop with a fresh reconciler (reading iptables in full every N intervals)."""
    reconciler = Reconciler(options)
    reconciler.watch.full_every = full_read_every
    loop = Loop(bundle_dir, interval, reconciler, Metrics(), metrics_file)
    reconciler.remote.watch = True
    reconciler.remote.on_change = loop.wake.set
    reconciler.services.watch = True
    reconciler.services.on_change = loop.wake.set
    return loop
