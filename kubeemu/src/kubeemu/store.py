"""The indexed object store: what etcd and the watch cache are to the real API server.

kmock 0.8 finds an object by scanning all of them, so every request costs O(objects). Here
each kind is a `Collection` of dicts keyed by (namespace, name), with indexes by namespace,
by label and (built on first use) by field path, so a read or a write costs O(1) and a
list costs O(matching objects).

Every write takes the next value of one global resourceVersion counter, as etcd's revision
does, and appends a `Change` to a bounded per-kind history. A watch from resourceVersion N
replays the history after N; when N is older than the history (compacted, or expired on
purpose by a test) the watch fails with 410 Expired, and clients must relist.

Stored objects are never modified in place: a write builds a new dict, so the history and
the JSON bytes cached beside each object stay valid. Serialising once per write, not once
per reader, keeps 10k-object lists and watch fan-out cheap.

All methods run on the event loop of the server; watchers are fed synchronously during the
write, so a list or a watch registration never misses or duplicates a change.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import copy
import datetime
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeemu import errors, selectors

Key = tuple[str | None, str]  # (namespace, name); namespace is None for cluster-scoped kinds


@dataclass(frozen=True)
class Kind:
    """What the store needs to know about a resource, taken from API discovery."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    has_status: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True, slots=True)
class Entry:
    obj: dict[str, Any]
    raw: bytes


@dataclass(frozen=True, slots=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    old: Entry | None
    new: Entry


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_line(event_type: str, raw: bytes) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + raw + b"}\n"


class Watcher:
    """One open watch: its filters and the queue of encoded event lines to send."""

    def __init__(
        self,
        namespace: str | None,
        labels: tuple[selectors.Requirement, ...],
        fields: tuple[selectors.Requirement, ...],
    ) -> None:
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def wants(self, entry: Entry | None) -> bool:
        if entry is None:
            return False
        if self.namespace is not None and entry.obj["metadata"].get("namespace") != self.namespace:
            return False
        return selectors.matches(entry.obj, self.labels, self.fields)

    def offer(self, change: Change) -> None:
        """Queue the event this watcher sees; a selector change turns into ADDED/DELETED."""
        now_matches = self.wants(change.new)
        if change.type == "MODIFIED":
            was_matching = self.wants(change.old)
            if was_matching and now_matches:
                self.queue.put_nowait(event_line("MODIFIED", change.new.raw))
            elif now_matches:
                self.queue.put_nowait(event_line("ADDED", change.new.raw))
            elif was_matching:
                self.queue.put_nowait(event_line("DELETED", change.new.raw))
        elif now_matches:
            self.queue.put_nowait(event_line(change.type, change.new.raw))

    def close(self, last_line: bytes | None = None) -> None:
        if last_line is not None:
            self.queue.put_nowait(last_line)
        self.queue.put_nowait(None)


@dataclass
class Collection:
    """The objects of one kind with their indexes, history and watchers."""

    kind: Kind
    history_limit: int
    objects: dict[Key, Entry] = field(default_factory=dict)
    by_namespace: dict[str | None, set[Key]] = field(
        default_factory=lambda: collections.defaultdict(set)
    )
    by_label: dict[str, dict[str, set[Key]]] = field(default_factory=dict)
    by_field: dict[str, dict[str, set[Key]]] = field(default_factory=dict)
    history: collections.deque[Change] = field(init=False)
    compacted_rv: int = 0  # changes up to this resourceVersion are no longer replayable
    watchers: set[Watcher] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.history = collections.deque(maxlen=self.history_limit)

    def _index(self, key: Key, entry: Entry, add: bool) -> None:
        def update(index: dict[str, set[Key]], value: str | None) -> None:
            if value is None:
                return
            keys = index.setdefault(value, set())
            if add:
                keys.add(key)
            else:
                keys.discard(key)
                if not keys:
                    del index[value]

        for label, value in (entry.obj["metadata"].get("labels") or {}).items():
            update(self.by_label.setdefault(label, {}), str(value))
        for path, index in self.by_field.items():
            update(index, selectors.field_value(entry.obj, path))

    def put(self, key: Key, entry: Entry | None) -> None:
        old = self.objects.get(key)
        if old is not None:
            self._index(key, old, add=False)
        if entry is None:
            self.objects.pop(key, None)
            self.by_namespace[key[0]].discard(key)
        else:
            self.objects[key] = entry
            self.by_namespace[key[0]].add(key)
            self._index(key, entry, add=True)

    def field_index(self, path: str) -> dict[str, set[Key]]:
        if path not in self.by_field:
            index: dict[str, set[Key]] = {}
            for key, entry in self.objects.items():
                value = selectors.field_value(entry.obj, path)
                if value is not None:
                    index.setdefault(value, set()).add(key)
            self.by_field[path] = index
        return self.by_field[path]

    def record(self, change: Change) -> None:
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(change)
        for watcher in self.watchers:
            watcher.offer(change)

    def select(
        self,
        namespace: str | None,
        labels: tuple[selectors.Requirement, ...],
        fields: tuple[selectors.Requirement, ...],
    ) -> list[Entry]:
        """The matching objects sorted by key, found through the smallest index that applies."""
        candidates: Iterable[Key] = (
            self.objects.keys() if namespace is None else self.by_namespace.get(namespace, ())
        )
        smallest = len(self.objects) if namespace is None else len(self.by_namespace[namespace])
        for requirement, index in [(r, self.by_label.get(r.key, {})) for r in labels] + [
            (r, self.field_index(r.key)) for r in fields
        ]:
            if not requirement.indexable:
                continue
            values = requirement.values if requirement.operator == "in" else index.keys()
            keys = set().union(*(index.get(value, ()) for value in values))
            if len(keys) < smallest:
                candidates, smallest = keys, len(keys)
        found = []
        for key in sorted(candidates, key=lambda k: (k[0] or "", k[1])):
            entry = self.objects.get(key)
            if entry is None or (namespace is not None and key[0] != namespace):
                continue
            if selectors.matches(entry.obj, labels, fields):
                found.append(entry)
        return found


class Store:
    """All collections, the resourceVersion counter, and the write operations."""

    def __init__(self, history_limit: int = 5000) -> None:
        self.rv = 0
        self.history_limit = history_limit
        self.collections: dict[Kind, Collection] = {}

    def collection(self, kind: Kind) -> Collection:
        if kind not in self.collections:
            self.collections[kind] = Collection(kind, self.history_limit)
        return self.collections[kind]

    # Reads

    def get(self, kind: Kind, namespace: str | None, name: str) -> Entry:
        entry = self.collection(kind).objects.get((namespace, name))
        if entry is None:
            raise errors.not_found(kind.plural, kind.group, name)
        return entry

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        labels: tuple[selectors.Requirement, ...] = (),
        fields: tuple[selectors.Requirement, ...] = (),
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[Entry], str | None, int]:
        """Matching entries, the continue token of the next page, and how many remain."""
        entries = self.collection(kind).select(namespace, labels, fields)
        if continue_token:
            start = _decode_continue(continue_token)
            entries = [
                e
                for e in entries
                if (e.obj["metadata"].get("namespace") or "", e.obj["metadata"]["name"]) > start
            ]
        if limit and len(entries) > limit:
            last = entries[limit - 1].obj["metadata"]
            token = _encode_continue((last.get("namespace") or "", last["name"]))
            return entries[:limit], token, len(entries) - limit
        return entries, None, 0

    # Writes

    def _stamp(self, obj: dict[str, Any]) -> Entry:
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return Entry(obj, _encode(obj))

    def _normalise(self, kind: Kind, obj: dict[str, Any], namespace: str | None) -> None:
        obj["kind"] = kind.kind
        obj["apiVersion"] = kind.api_version
        metadata = obj["metadata"]
        if kind.namespaced:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if kind.kind == "Secret" and kind.group == "":
            # The API server folds the write-only stringData into data.
            string_data = obj.pop("stringData", None) or {}
            data = dict(obj.get("data") or {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            if data:
                obj["data"] = data
            obj.setdefault("type", "Opaque")

    def _check_object(self, kind: Kind, obj: Any, name: str | None = None) -> dict[str, Any]:
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise errors.bad_request("the body must be a JSON object with an object metadata")
        for field_name in ("kind", "apiVersion"):
            expected = kind.kind if field_name == "kind" else kind.api_version
            if obj.get(field_name) not in (None, expected):
                raise errors.bad_request(
                    f"{field_name} {obj.get(field_name)!r} does not match the URL ({expected})"
                )
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})
        if name is not None and obj["metadata"].get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({obj['metadata']['name']}) does not match the name "
                f"on the URL ({name})"
            )
        return obj

    def create(self, kind: Kind, namespace: str | None, body: Any) -> Entry:
        obj = self._check_object(kind, body)
        metadata = obj["metadata"]
        if kind.namespaced and metadata.get("namespace") not in (None, namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        name = metadata.get("name")
        if not name or not isinstance(name, str):
            raise errors.invalid(kind.kind, "", "metadata.name: Required value: name is required")
        namespace = namespace if kind.namespaced else None
        collection = self.collection(kind)
        key = (namespace, name)
        if key in collection.objects:
            raise errors.already_exists(kind.plural, kind.group, name)
        self._normalise(kind, obj, namespace)
        if kind.has_status:
            obj.pop("status", None)
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            metadata.pop(transient, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata.setdefault("creationTimestamp", _now())  # kept when a manifest sets it
        metadata["generation"] = 1
        self.rv += 1
        entry = self._stamp(obj)
        collection.put(key, entry)
        collection.record(Change(self.rv, "ADDED", None, entry))
        return entry

    def update(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        change: Callable[[dict[str, Any]], Any],
        subresource: str | None = None,
    ) -> Entry:
        """Replace or patch: `change` maps the current object to the wanted one.

        The rules of the real server apply: the main endpoint ignores `status` for kinds
        with a status subresource and `/status` changes nothing else; identity and
        server-owned metadata are kept; a resourceVersion in the body must be the current
        one (optimistic concurrency); an update that changes nothing writes nothing.
        """
        collection = self.collection(kind)
        key = (namespace if kind.namespaced else None, name)
        current = self.get(kind, key[0], name)
        wanted = self._check_object(kind, change(copy.deepcopy(current.obj)), name)
        given_rv = wanted["metadata"].get("resourceVersion")
        if given_rv not in (None, "", current.obj["metadata"]["resourceVersion"]):
            raise errors.conflict(kind.plural, kind.group, name)
        if subresource == "status":
            obj = copy.deepcopy(current.obj)
            if "status" in wanted:
                obj["status"] = wanted["status"]
            else:
                obj.pop("status", None)
        else:
            obj = wanted
            if kind.has_status:
                if "status" in current.obj:
                    obj["status"] = current.obj["status"]
                else:
                    obj.pop("status", None)
            self._normalise(kind, obj, key[0])
        metadata, old_metadata = obj["metadata"], current.obj["metadata"]
        metadata["name"] = name
        for owned in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
            if owned in old_metadata:
                metadata[owned] = old_metadata[owned]
            else:
                metadata.pop(owned, None)
        metadata["resourceVersion"] = old_metadata["resourceVersion"]

        def content(o: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in o.items() if k not in ("metadata", "status")}

        if content(obj) != content(current.obj):
            metadata["generation"] = old_metadata.get("generation", 0) + 1
        if obj == current.obj:
            return current
        self.rv += 1
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            return self._remove(collection, key, self._stamp(obj))
        entry = self._stamp(obj)
        collection.put(key, entry)
        collection.record(Change(self.rv, "MODIFIED", current, entry))
        return entry

    def delete(self, kind: Kind, namespace: str | None, name: str) -> Entry:
        collection = self.collection(kind)
        key = (namespace if kind.namespaced else None, name)
        current = self.get(kind, key[0], name)
        metadata = current.obj["metadata"]
        if metadata.get("finalizers"):
            if metadata.get("deletionTimestamp"):
                return current
            obj = copy.deepcopy(current.obj)
            obj["metadata"]["deletionTimestamp"] = _now()
            self.rv += 1
            entry = self._stamp(obj)
            collection.put(key, entry)
            collection.record(Change(self.rv, "MODIFIED", current, entry))
            return entry
        self.rv += 1
        return self._remove(collection, key, self._stamp(copy.deepcopy(current.obj)))

    def _remove(self, collection: Collection, key: Key, final: Entry) -> Entry:
        old = collection.objects[key]
        collection.put(key, None)
        collection.record(Change(self.rv, "DELETED", old, final))
        return final

    # Watches

    def watch(
        self,
        kind: Kind,
        namespace: str | None,
        labels: tuple[selectors.Requirement, ...],
        fields: tuple[selectors.Requirement, ...],
        since: int | None,
    ) -> Watcher:
        """Register a watcher; `since=None` starts with ADDED events for the current state."""
        collection = self.collection(kind)
        if since is not None and since < collection.compacted_rv:
            raise errors.expired(
                f"too old resource version: {since} ({collection.compacted_rv + 1})"
            )
        watcher = Watcher(namespace if kind.namespaced else None, labels, fields)
        if since is None:
            for entry in collection.select(watcher.namespace, labels, fields):
                watcher.queue.put_nowait(event_line("ADDED", entry.raw))
        else:
            for change in collection.history:
                if change.rv > since:
                    watcher.offer(change)
        collection.watchers.add(watcher)
        return watcher

    def unwatch(self, kind: Kind, watcher: Watcher) -> None:
        self.collection(kind).watchers.discard(watcher)

    def expire(self, kinds: Iterable[Kind] | None = None) -> None:
        """Forget the history and end the open watches with 410, as a compaction would."""
        for kind in list(kinds if kinds is not None else self.collections):
            collection = self.collection(kind)
            collection.history.clear()
            collection.compacted_rv = self.rv
            gone = errors.expired("The resourceVersion for the provided watch is too old.")
            for watcher in list(collection.watchers):
                watcher.close(event_line("ERROR", gone.body()))
            collection.watchers.clear()


def _encode_continue(last: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(last)).encode()).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        namespace, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return (str(namespace), str(name))
    except (ValueError, TypeError, binascii.Error) as error:
        raise errors.bad_request(f"invalid continue token: {error}") from error
