"""The watch cache: the latest version of every watched object, shared by all threads.

Informers write into it; the controller takes snapshots of it and waits on it for
changes. Each write asks `relevant(kind, old, new)` whether the change can alter the
rendered configuration; only relevant changes wake the controller (a status written by
an edge agent, or a Secret no Ingress uses, costs no sync). The objects themselves are
kept whatever the answer, so a later snapshot is always complete.

Objects are the API's JSON dicts, shared and never modified after they are stored.

With `--watch-namespaces`, several informers fill one kind, one namespace each: a list
replaces that namespace's objects only, and the kind is synced once each has listed.

Secrets (`Resource.held_only_while_referenced`): `withheld(kind, obj)`, the controller's
judgement of what no Ingress refers to, makes the cache keep only the object's identity
(`identity_of`), without its data or annotations (kubectl's last-applied annotation
holds a copy of the data). It is asked again at every snapshot, so a Secret no longer
referenced loses its data there; one referenced anew is read again from the API by the
controller (`identities`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from edgeagent.resources import NAMES, RESOURCES, Key, Object, key_of

__all__ = ["Cache", "Key", "Object", "key_of"]


def _always(kind: str, old: Object | None, new: Object | None) -> bool:
    return True


def _never(kind: str, obj: Object) -> bool:
    return False


IDENTITY_FIELDS = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def _keyed(obj: Object) -> tuple[Key, Object]:
    return key_of(obj), obj


def identity_of(obj: Object) -> Object:
    """An object without its content: kind, apiVersion, type and identifying metadata."""
    metadata = obj.get("metadata") or {}
    return {
        **{k: obj[k] for k in ("kind", "apiVersion", "type") if k in obj},
        "metadata": {k: metadata[k] for k in IDENTITY_FIELDS if k in metadata},
    }


class Cache:
    def __init__(self, namespaces: tuple[str, ...] = ()) -> None:
        """`namespaces`: those watched one by one (empty: all at once)."""
        self._changed = threading.Condition()
        self._objects: dict[str, dict[Key, Object]] = {kind: {} for kind in NAMES}
        self._sources = {
            (resource.name, namespace)
            for resource in RESOURCES
            for namespace in (namespaces if resource.namespaced and namespaces else (None,))
        }
        """(kind, namespace or None) of every informer that fills the cache."""
        self._synced: set[tuple[str, str | None]] = set()
        self.version = 0
        """Counts relevant changes; the controller syncs when it moves."""
        self.first_change_at: float | None = None
        """monotonic() of the oldest relevant change not yet taken by a snapshot."""
        self.last_change_at = 0.0
        self.relevant: Callable[[str, Object | None, Object | None], bool] = _always
        self.withheld: Callable[[str, Object], bool] = _never
        self._identities: dict[str, set[Key]] = {kind: set() for kind in NAMES}
        """Keys of the objects held as their identity only, by kind."""

    def _held(self, kind: str, key: Key, obj: Object) -> Object:
        """What to store of `obj`: itself, or its identity if withheld."""
        if self.withheld(kind, obj):
            self._identities[kind].add(key)
            return identity_of(obj)
        self._identities[kind].discard(key)
        return obj

    def _touch(self) -> None:
        now = time.monotonic()
        self.version += 1
        self.last_change_at = now
        if self.first_change_at is None:
            self.first_change_at = now
        self._changed.notify_all()

    def replace(self, kind: str, objects: list[Object], namespace: str | None = None) -> None:
        """The result of a (re)list: the whole kind at once, or its objects in `namespace`."""
        with self._changed:
            if namespace is None:
                self._identities[kind].clear()
            else:
                self._identities[kind] = {k for k in self._identities[kind] if k[0] != namespace}
            listed = {key: self._held(kind, key, obj) for key, obj in map(_keyed, objects)}
            if namespace is not None:
                others = self._objects[kind].items()
                listed.update((key, obj) for key, obj in others if key[0] != namespace)
            self._objects[kind] = listed
            self._synced.add((kind, namespace))
            self._touch()

    def upsert(self, kind: str, obj: Object) -> None:
        with self._changed:
            key = key_of(obj)
            old = self._objects[kind].get(key)
            self._objects[kind][key] = self._held(kind, key, obj)
            if self.relevant(kind, old, obj):
                self._touch()

    def delete(self, kind: str, obj: Object) -> None:
        with self._changed:
            self._identities[kind].discard(key_of(obj))
            old = self._objects[kind].pop(key_of(obj), None)
            if old is not None and self.relevant(kind, old, None):
                self._touch()

    def get(self, kind: str, key: Key) -> Object | None:
        with self._changed:
            return self._objects[kind].get(key)

    def synced(self) -> bool:
        with self._changed:
            return self._synced >= self._sources

    def counts(self) -> dict[str, int]:
        with self._changed:
            return {kind: len(objects) for kind, objects in self._objects.items()}

    def snapshot(
        self, prepare: Callable[[dict[str, list[Object]]], None] | None = None
    ) -> tuple[int, dict[str, list[Object]]]:
        """The version and every object of every kind, for a sync.

        Resets the pending-change clock. `prepare` runs on the snapshot before the lock is
        released, so that what it derives (the controller's relevance filter) is in place
        before the next change is judged by it.
        """
        with self._changed:
            self.first_change_at = None
            objects = {kind: list(objs.values()) for kind, objs in self._objects.items()}
            if prepare is not None:
                prepare(objects)
                self._withhold_again()
            return self.version, objects

    def _withhold_again(self) -> None:
        """Drop the content of the objects the (new) judgement withholds."""
        for kind, stored in self._objects.items():
            for key, obj in stored.items():
                if key not in self._identities[kind] and self.withheld(kind, obj):
                    stored[key] = identity_of(obj)
                    self._identities[kind].add(key)

    def identities(self, kind: str, keys: Iterable[Key]) -> list[Key]:
        """Those of `keys` held as their identity only (to be read again whole)."""
        with self._changed:
            return [key for key in keys if key in self._identities[kind]]

    def snapshot_kind(self, kind: str) -> tuple[int, dict[Key, Object]]:
        """One kind, keyed, without touching the pending-change clock (for reporters)."""
        with self._changed:
            return self.version, dict(self._objects[kind])

    def wait(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until `predicate()` (evaluated under the cache lock) holds, or timeout."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def wake(self) -> None:
        """Wake waiters without a change (shutdown, retry timers)."""
        with self._changed:
            self._changed.notify_all()
