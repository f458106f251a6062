"""The sync loop: cache snapshot -> model.build -> render -> apply -> report.

Coalescing. The controller does not sync per event. A relevant change starts a clock;
the sync runs when the cache has been quiet for `quiet_period`, or `max_delay` after the
first pending change if changes keep coming, and never sooner than
`min_reload_interval` after the previous reload. Each sync takes the latest state as a
whole, so a burst of any size costs one render and at most one reload: the latest state
wins, intermediate states are never rendered.

Relevance. Changes that cannot alter the output do not start the clock: the status of an
Ingress (the agents write it themselves), resourceVersion-only updates, and Services,
EndpointSlices and Secrets that no Ingress refers to. The references are taken from the
Ingresses of each snapshot, under the cache's lock, so no change slips between a snapshot
and the filter that judges the next change.

Cost of a change. The model is built from the whole snapshot every time, with a
`model.Memo` that keeps what each unchanged object gave the previous build; render reuses
the text of unchanged upstreams and servers (`render.Memo`); apply.py validates only the
blocks that changed. A change costs work in proportion to what it changed, plus a few
fast passes over all objects (at 10,000 Ingresses, about 0.14 s of build and 0.05 s of
render on a lightly loaded machine, against 0.5-0.9 s and 0.15 s without the memos).
Build and render run with the cyclic garbage collector paused (collector.py). The
objects of the initial lists, and after the first sync what was derived from them, are
moved out of the collector's sight with `gc.freeze()`: most of them live as long as the
agent, and traversing them in every full collection cost about 0.3 s per sync at 10,000
Ingresses (frozen objects are still freed when nothing refers to them; they hold no
cycles).

Dynamic mode (`control` given; docs/dynamic.md). Endpoints and certificates are not in
edge.conf, so a change of only those renders the same generation: apply.py finds it
unchanged and nothing reloads. Each sync writes the certificate files and state.txt
before applying (a reload, or a restart, then loads what this sync knows), and after
applying pushes to nginx's control endpoint (push.py: the whole state after a reload,
else what changed since the last push; a failed push is retried in full, with a
backoff of its own). A sync whose generation serves already reloads nothing, so its
state.txt is written after the push instead: at 100,000 Ingresses encoding it takes
longer than the push. Every `verify_interval` the agent compares the version nginx holds
with its last push: a restarted nginx holds state.txt's, and gets the whole state again.

Outcomes (see apply.py): unchanged bytes stop before anything is written. When nginx -t
refuses host servers on their own (`ApplyResult.offenders`), those are quarantined and the
candidate is made and applied again without them (quarantine.py), in the same sync and in
later ones while they render the same. A generation rejected by nginx -t is not tried
again until the state changes; a failed reload is
retried with exponential backoff. On success the status is published and the problems
reported; on rejection, Events go to the Ingresses that changed since the configuration
that serves, the likely culprits (at most `MAX_SUSPECTS` of them).
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeagent import (
    annotations,
    collector,
    dynamic,
    model,
    options,
    quarantine,
    render,
    resources,
    route_table,
)
from edgeagent.annotations import extauth, mirror
from edgeagent.apply import Applier, ApplyResult, Outcome
from edgeagent.backoff import Backoff
from edgeagent.cache import Cache, Key, Object, key_of
from edgeagent.control import Control
from edgeagent.events import EventRecorder
from edgeagent.gateway import references as gateway_references
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.attachment import Attachment
from edgeagent.health import HealthState
from edgeagent.metrics import Metrics
from edgeagent.push import DynamicPush
from edgeagent.remembered import Remembered
from edgeagent.status import StatusPublisher

log = logging.getLogger(__name__)

MAX_SUSPECTS = 20
PROBLEM_CODES = (
    "invalid",
    "unsupported",
    "conflict",
    "missing-service",
    "secret",
    "warning",
    quarantine.CODE,
    "backend",
)


@dataclass(frozen=True)
class SyncSettings:
    quiet_period: float = field(
        default=0.1,
        metadata=options.seconds("sync-quiet-period", "sync once no change came for this long"),
    )
    """Sync once the cache has been quiet this long. One `kubectl apply -f dir/` or one
    rollout is a burst of events milliseconds apart; 100 ms joins them into one sync and is
    below what a person notices."""
    max_delay: float = field(
        default=1.0,
        metadata=options.seconds(
            "sync-max-delay", "sync at the latest this long after the first pending change"
        ),
    )
    """Sync at the latest this long after the first pending change, even while changes keep
    coming, so steady endpoint churn cannot postpone a new Ingress."""
    min_reload_interval: float = field(
        default=0.5,
        metadata=options.seconds("min-reload-interval", "at least this long between reloads"),
    )
    """At least this long from the end of one reload to the start of the next sync. Each
    reload parses the whole configuration and starts new workers next to the old ones
    (which live up to worker_shutdown_timeout); this caps both, while a change that comes
    alone still reaches traffic well within a second."""
    retry_initial: float = 5.0
    """First retry of a generation whose reload failed or was not confirmed (systemd busy,
    nginx restarting), doubled per failure: soon enough for a hiccup."""
    retry_max: float = 300.0
    """Retry cap: a reload that keeps failing is tried every five minutes, not hammered,
    while the last good configuration serves."""
    verify_interval: float = field(
        default=10.0,
        metadata=options.seconds(
            "dynamic-verify-interval",
            "dynamic mode: how often to check that nginx holds the last pushed state, and push "
            "it whole if not (after nginx restarted)",
        ),
    )
    """Dynamic mode: how often the agent asks nginx which version of the dynamic state it
    holds, to push the whole state again after nginx restarted on its own."""


@dataclass(frozen=True)
class References:
    """What the Ingresses, Gateways and routes of a snapshot refer to: the objects worth a
    sync when they change."""

    services: frozenset[Key] = frozenset()
    secrets: frozenset[Key] = frozenset()
    config_maps: frozenset[Key] = frozenset()


def _backends(spec: dict[str, Any]) -> list[Any]:
    backends = [spec.get("defaultBackend")]
    for rule in spec.get("rules") or []:
        if isinstance(rule, dict):
            for path in (rule.get("http") or {}).get("paths") or []:
                if isinstance(path, dict):
                    backends.append(path.get("backend"))
    return backends


def references(
    ingresses: list[Object],
    prefix: str,
    each: Callable[[list[Object]], list[Named]] | None = None,
) -> References:
    """Every Service, Secret and ConfigMap named by any Ingress (of any class: a superset
    is safe): in `spec.tls`, or by an annotation under `prefix` (in the Ingress's own
    namespace only: default-backend names a Service; the cluster Service of a mirror-target
    or an auth-url in any). `each`: `named_by` of each Ingress, from memory (the
    controller's, remembered.py)."""
    named = each(ingresses) if each else [named_by(ingress, prefix) for ingress in ingresses]
    by_kind = zip(*named, strict=True) if named else ((), (), ())
    return References(*(frozenset(itertools.chain.from_iterable(keys)) for keys in by_kind))


Named = tuple[tuple[Key, ...], tuple[Key, ...], tuple[Key, ...]]
"""The Services, Secrets and ConfigMaps one Ingress names: tuples, the empty one shared,
as the controller keeps one per Ingress (100,000 sets would take about 60 MB more)."""


def named_by(ingress: Object, prefix: str) -> Named:
    """What one Ingress names (see `references`)."""
    services, secrets, config_maps = set(), set(), set()
    namespace = key_of(ingress)[0]
    metadata = ingress.get("metadata")
    written = metadata.get("annotations") if isinstance(metadata, dict) else None
    for keys, named in (
        (annotations.SECRET_KEYS, secrets),
        (annotations.CONFIG_MAP_KEYS, config_maps),
    ):
        for key in keys:
            value = written.get(f"{prefix}/{key}") if isinstance(written, dict) else None
            if isinstance(value, str) and value.rpartition("/")[0] in ("", namespace):
                named.add((namespace, value.rpartition("/")[2]))
    for key, service_of in (
        (mirror.TARGET, mirror.service_of),
        (extauth.URL, extauth.service_of),
    ):
        url = written.get(f"{prefix}/{key}") if isinstance(written, dict) else None
        named = service_of(url) if url is not None else None
        if named is not None:
            services.add(named[:2])
    default_backend = (
        written.get(f"{prefix}/{annotations.errorpages.DEFAULT_BACKEND}")
        if isinstance(written, dict)
        else None
    )
    if isinstance(default_backend, str):
        services.add((namespace, default_backend))
    spec = ingress.get("spec")
    if not isinstance(spec, dict):
        return tuple(services), tuple(secrets), tuple(config_maps)
    for backend in _backends(spec):
        service = backend.get("service") if isinstance(backend, dict) else None
        if isinstance(service, dict) and isinstance(service.get("name"), str):
            services.add((namespace, service["name"]))
    for tls in spec.get("tls") or []:
        if isinstance(tls, dict) and isinstance(tls.get("secretName"), str):
            secrets.add((namespace, tls["secretName"]))
    return tuple(services), tuple(secrets), tuple(config_maps)


def _content(obj: Object | None, drop_status: bool) -> Object | None:
    """An object without what changes on every write but never alters the output."""
    if obj is None:
        return None
    metadata = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields", "generation")
    }
    return {
        **{k: v for k, v in obj.items() if not (drop_status and k == "status")},
        "metadata": metadata,
    }


class Controller:
    def __init__(
        self,
        cache: Cache,
        options: model.Options,
        layout: render.Layout,
        applier: Applier,
        status: StatusPublisher,
        events: EventRecorder,
        metrics: Metrics,
        health: HealthState,
        settings: SyncSettings,
        stop: threading.Event,
        on_first_sync: Callable[[ApplyResult], None] = lambda result: None,
        control: Control | None = None,
        read: Callable[[resources.Resource, Key], Object | None] | None = None,
    ) -> None:
        """`read`: reads one object from the API. Given, the cache holds Secrets whole only
        while an Ingress refers to them (cache.py), and `read` fetches one referenced anew."""
        self.cache = cache
        self.options = options
        self.layout = layout
        self.applier = applier
        self.status = status
        self.events = events
        self.metrics = metrics
        self.health = health
        self.settings = settings
        self._stop = stop
        self._on_first_sync = on_first_sync
        self._references = References()
        self._references_known = False
        prefix = options.annotations.annotations_prefix
        self._named = Remembered(lambda ingress: named_by(ingress, prefix))
        """What each Ingress names, while it is the same object (cache.py: never modified)."""
        backend = options.annotations.default_backend_service
        self._agent_default_backend = frozenset([tuple(backend.split("/"))] if backend else [])
        """--default-backend-service: referenced whether an Ingress names it or not."""
        self._seen_version = -1
        self._last_reload_end = float("-inf")
        self._rejected: str | None = None
        self._retry = Backoff(settings.retry_initial, settings.retry_max)
        self._retry_at: float | None = None
        self._good_ingresses: dict[Key, Object] = {}
        self._certificates: dict[tuple[str, str], model.CertPair] = {}
        self._model_memo = model.Memo()
        self._render_memo = render.Memo()
        self._first = True
        self._last_blocks: dict[str, render.Block] | None = None
        self._serving_generation: str | None = None
        self._serving_model: model.Model | None = None
        self._quarantine: dict[str, tuple[str, str]] = {}
        """Host server blocks nginx -t refused: block id -> (fingerprint, nginx's reason)."""
        self.dynamic_push = (
            None
            if control is None
            else DynamicPush(
                control,
                metrics,
                settings.verify_interval,
                Backoff(settings.retry_initial, settings.retry_max),
            )
        )
        cache.relevant = self.relevant
        self._read = read
        if read is not None:
            cache.withheld = self.withheld
        self.thread = threading.Thread(target=self.run, name="controller", daemon=True)

    def serving_upstreams(self) -> tuple[model.Upstream, ...]:
        """The upstreams of the configuration that serves (read by the backend probe's
        thread: one attribute read, no lock needed)."""
        serving = self._serving_model
        return serving.upstreams if serving is not None else ()

    def serving_ingresses(self) -> Mapping[Key, Object]:
        """The Ingresses of the configuration that serves (read by /metrics' thread for the
        request counters' labels; replaced whole, never changed in place)."""
        return self._good_ingresses

    # Relevance (called by informer threads under the cache lock)

    def relevant(self, kind: str, old: Object | None, new: Object | None) -> bool:
        obj = new if new is not None else old
        assert obj is not None
        resource = resources.BY_NAME[kind]
        if resource.referenced_as is not None:
            referenced = getattr(self._references, resource.referenced_as)
            if resource.reference_key(obj) not in referenced:
                return False
        if resource.content is not None:
            before = None if old is None else resource.content(old)
            return before != (None if new is None else resource.content(new))
        return _content(old, resource.status_ignored) != _content(new, resource.status_ignored)

    def withheld(self, kind: str, obj: Object) -> bool:
        """Whether the cache holds `obj` as its identity only: a Secret no Ingress or Gateway
        names."""
        resource = resources.BY_NAME[kind]
        if not resource.held_only_while_referenced or not self._references_known:
            # Before the first snapshot no reference is known: the initial lists stay
            # whole (their response held every Secret anyway), and the first snapshot
            # withholds what is not referenced, instead of reading each Secret again.
            return False
        assert resource.referenced_as is not None
        return resource.reference_key(obj) not in getattr(self._references, resource.referenced_as)

    def _prepare(self, snapshot: dict[str, list[Object]]) -> None:
        named = references(
            snapshot["ingresses"], self.options.annotations.annotations_prefix, self._named.each
        )
        self._references = References(
            named.services
            | self._agent_default_backend
            | gateway_references.services(snapshot["http_routes"])
            | gateway_references.services(snapshot["grpc_routes"]),
            named.secrets | gateway_references.secrets(snapshot["gateways"]),
            named.config_maps,
        )
        self._references_known = True

    def _read_referenced(self) -> bool:
        """Read whole the objects referenced anew that the cache holds as their identity
        only; True if any was stored (a new snapshot is due)."""
        if self._read is None:
            return False
        stored = False
        for resource in resources.RESOURCES:
            if not resource.held_only_while_referenced:
                continue
            assert resource.referenced_as is not None
            referenced = getattr(self._references, resource.referenced_as)
            for key in self.cache.identities(resource.name, referenced):
                obj = self._read(resource, key)
                if obj is not None:
                    self.cache.upsert(resource.name, obj)
                    stored = True
        return stored

    # The loop

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        self.cache.wait(lambda: self._stop.is_set() or self.cache.synced(), None)
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:  # a bug must not stop the edge from following the cluster
                log.exception("sync failed")
                self._schedule_retry()
            self._wait_for_work()

    def _pending(self) -> bool:
        retry_due = self._retry_at is not None and time.monotonic() >= self._retry_at
        return self._stop.is_set() or self.cache.version != self._seen_version or retry_due

    def _wait_for_work(self) -> None:
        while not self._pending():
            wake = [] if self._retry_at is None else [self._retry_at]
            if self.dynamic_push is not None:
                wake.append(self.dynamic_push.verify_at)
            timeout = max(0.0, min(wake) - time.monotonic()) if wake else None
            self.cache.wait(self._pending, timeout)
            push = self.dynamic_push
            if push is not None and time.monotonic() >= push.verify_at and push.verify():
                self._retry_at = time.monotonic()  # the whole state again, by a sync now
        while not self._stop.is_set():
            now = time.monotonic()
            first = self.cache.first_change_at
            due = self.cache.last_change_at + self.settings.quiet_period
            if first is not None:
                due = min(due, first + self.settings.max_delay)
            due = max(due, self._last_reload_end + self.settings.min_reload_interval)
            if now >= due:
                return
            self.cache.wait(self._stop.is_set, due - now)

    def _schedule_retry(self, delay: float | None = None) -> None:
        """Sync again after `delay`, by default the next of the failed reloads' backoff."""
        self._retry_at = time.monotonic() + (self._retry.failed() if delay is None else delay)

    def sync(self) -> ApplyResult | None:
        started = time.monotonic()
        version, snapshot = self.cache.snapshot(self._prepare)
        if self._read_referenced():
            version, snapshot = self.cache.snapshot(self._prepare)
        if self._first:
            gc.freeze()  # the initial lists (module docstring)
        self._seen_version = version
        self._retry_at = None
        for kind, objects in snapshot.items():
            self.metrics.objects.labels(kind).set(len(objects))
        secrets = [s for s in snapshot["secrets"] if key_of(s) in self._references.secrets]
        config_maps = [
            c for c in snapshot["config_maps"] if key_of(c) in self._references.config_maps
        ]
        inputs = model.Inputs(**{**snapshot, "secrets": secrets, "config_maps": config_maps})
        options = dataclasses.replace(self.options, previous_certificates=self._certificates)
        with collector.paused():  # see collector.py
            whole, attachment = gateway_routing.build(
                model.build(inputs, options, self._model_memo), inputs, options
            )
            built_at = time.monotonic()
            built, rendered = self._candidate(whole, snapshot["ingresses"])
            rendered_at = time.monotonic()
        state = self._dynamic_state(built)
        # A generation that serves already is no reload: nginx takes the change by the push,
        # and state.txt (20 MB at 100k Ingresses) is written after it, off the change's path.
        reloads = rendered.generation != self._serving_generation
        if state is not None and not self.dynamic_push.write_files(state, state_file=reloads):
            self._schedule_retry()
            return None
        if rendered.generation == self._rejected:
            log.debug("same candidate as the rejected one; waiting for a change")
            self._set_problem_metrics(built)
            if state is not None:  # the generation that serves takes the peers anyway
                self._push(self._served_state(state, built), full=False)
            return None
        cause = self._reload_cause(rendered)
        result = self.applier.apply(rendered)
        while result.outcome is Outcome.REJECTED and self._quarantined(rendered, result):
            with collector.paused():
                built, rendered = self._candidate(whole, snapshot["ingresses"])
            state = self._dynamic_state(built)
            if state is not None and not self.dynamic_push.write_files(state):
                self._schedule_retry()
                return None
            result = self.applier.apply(rendered)
        self._set_problem_metrics(built)
        finished = time.monotonic()
        phases = {
            "build": built_at - started,
            "render": rendered_at - built_at,
            **result.steps,
            "apply": finished - rendered_at,
            "total": finished - started,
        }
        for phase, seconds in phases.items():
            self.metrics.sync_duration.labels(phase).observe(seconds)
        if result.validation:
            self.metrics.validations.labels(result.validation.split(":")[0]).inc()
        self.metrics.syncs.labels(result.outcome.value).inc()
        if result.outcome in (Outcome.APPLIED, Outcome.FAILED):  # a reload was attempted
            self.metrics.reload_causes.labels(cause).inc()
        if state is not None:  # before the report: the change serves once pushed
            applied = result.outcome is Outcome.APPLIED
            if result.outcome is not Outcome.UNCHANGED and not applied:
                state = self._served_state(state, built)
            if self._push(state, full=applied) and applied:
                self.dynamic_push.remove_unused_certificates(state)
            self.dynamic_push.write_files(state)  # what a restarted nginx loads
        self._report(result, built, attachment, snapshot["ingresses"], phases)
        if result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
            self._last_blocks = rendered.blocks
            self._serving_generation = rendered.generation
            self._serving_model = built
        if self._first:
            self._first = False
            gc.freeze()  # see the module docstring
            self._on_first_sync(result)
        return result

    def _served_state(self, state: dynamic.State, built: model.Model) -> dynamic.State:
        """`state` for the generation that still serves when `built`'s was not applied: a
        host the candidate moves out of the route table, to a server block of its own that
        nginx does not have, keeps the routes it is served by until that block serves."""
        if self._serving_model is None:
            return state
        serving = dynamic.state_of(self._serving_model, self.layout.routes_by_table).routes
        # The table's names: a wildcard of any depth is **.example.com there.
        hosts = {route_table.table_name(server) for server in built.servers}
        kept = {
            host: rules
            for host, rules in serving.items()
            if host not in state.routes and host in hosts
        }
        return dataclasses.replace(state, routes={**state.routes, **kept}) if kept else state

    def _dynamic_state(self, built: model.Model) -> dynamic.State | None:
        if self.dynamic_push is None:
            return None
        return dynamic.state_of(built, self.layout.routes_by_table)

    def _candidate(
        self, whole: model.Model, ingresses: list[Object]
    ) -> tuple[model.Model, render.Rendered]:
        """The model and its rendering, without the servers still quarantined: those
        whose block renders as it did when nginx -t refused it (quarantine.py). A block
        that renders differently is forgiven and tried again."""
        rendered = render.render(whole, self.layout, self._render_memo)
        self._quarantine = {
            block_id: (fingerprint, reason)
            for block_id, (fingerprint, reason) in self._quarantine.items()
            if block_id in rendered.blocks and rendered.blocks[block_id].fingerprint == fingerprint
        }
        if not self._quarantine:
            return whole, rendered
        refused = {
            quarantine.host_of(block_id): reason
            for block_id, (_, reason) in self._quarantine.items()
        }
        built = quarantine.withhold(whole, refused, self._serving_model, ingresses)
        return built, render.render(built, self.layout, self._render_memo)

    def _quarantined(self, rendered: render.Rendered, result: ApplyResult) -> bool:
        """Quarantine the blocks nginx -t refused on their own; False if none is new."""
        new = [block_id for block_id in result.offenders if block_id not in self._quarantine]
        reason = result.detail.splitlines()[0] if result.detail else "refused"
        for block_id in new:
            self._quarantine[block_id] = (rendered.blocks[block_id].fingerprint, reason)
            log.error(
                "server quarantined: nginx -t refuses it",
                extra={"host": quarantine.host_of(block_id), "detail": result.detail},
            )
        return bool(new)

    def _set_problem_metrics(self, built: model.Model) -> None:
        self.metrics.set_invalid((p.code for p in built.problems), PROBLEM_CODES)
        self.metrics.quarantined_servers.set(len(self._quarantine))

    def _reload_cause(self, rendered: render.Rendered) -> str:
        """What a reload to `rendered` would be for (metric edgeagent_reloads_by_cause):
        each block that differs from the generation serving is an upstream's peers
        (endpoints), a server's certificate bytes (certificates) or anything else
        (structure); the first of structure, endpoints, certificates found wins."""
        if self._last_blocks is None:
            return "start"
        before, after = self._last_blocks, rendered.blocks

        def kind(block_id: str) -> str:
            if block_id not in before or block_id not in after:
                return "structure"
            if block_id.startswith("upstream "):
                return "endpoints"
            return "certificates" if before[block_id].text == after[block_id].text else "structure"

        kinds = {
            kind(block_id)
            for block_id in before.keys() | after.keys()
            if block_id != render.STATUS_BLOCK and before.get(block_id) != after.get(block_id)
        }
        causes = ("structure", "endpoints", "certificates")
        return next((cause for cause in causes if cause in kinds), "structure")

    def _push(self, state: dynamic.State, full: bool) -> bool:
        """Push to nginx (see push.py); False (and a retry scheduled) if it failed."""
        assert self.dynamic_push is not None
        retry_in = self.dynamic_push.push(state, full)
        if retry_in is not None:
            self._schedule_retry(retry_in)
        return retry_in is None

    def _report(
        self,
        result: ApplyResult,
        built: model.Model,
        attachment: Attachment,
        ingresses: list[Object],
        phases: dict[str, float],
    ) -> None:
        fields = {
            "generation": result.generation,
            "outcome": result.outcome.value,
            "seconds": round(phases["total"], 3),
            "phases": {phase: round(seconds, 3) for phase, seconds in phases.items()},
            "validation": result.validation,
            "served": len(built.served_ingresses),
            "problems": len(built.problems),
        }
        if result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
            if result.outcome is Outcome.APPLIED:
                self._last_reload_end = time.monotonic()
                self.metrics.reloads.labels("success").inc()
                self.metrics.last_reload_success.set_to_current_time()
                log.info("applied", extra=fields)
            else:
                log.info("unchanged", extra=fields)
            self.metrics.last_reload_successful.set(1)
            self.metrics.set_generation(result.generation)
            self.health.record(result.outcome.value, result.generation)
            self._rejected = None
            self._retry.succeeded()
            self._certificates = dict(built.certificates)
            self._good_ingresses = {key_of(i): i for i in ingresses}
            self.status.publish(built.served_ingresses, attachment)
            self.events.clear_rejections()
            self.events.report_problems(built.problems)
            return
        self.metrics.last_reload_successful.set(0)
        self.health.record(result.outcome.value, None, result.detail)
        self.events.report_problems(built.problems)
        if result.outcome is Outcome.REJECTED:
            self.metrics.reloads.labels("rejected").inc()
            self._rejected = result.generation
            log.error("rejected by nginx -t", extra={**fields, "detail": result.detail})
            now = {key_of(i): i for i in ingresses}
            suspects = [
                key
                for key in built.served_ingresses
                if _content(self._good_ingresses.get(key), True) != _content(now[key], True)
            ]
            self.events.report_rejected(suspects[:MAX_SUSPECTS], result.detail)
        else:
            self.metrics.reloads.labels("failed").inc()
            self._last_reload_end = time.monotonic()
            self._schedule_retry()
            log.error("apply failed", extra={**fields, "detail": result.detail})
