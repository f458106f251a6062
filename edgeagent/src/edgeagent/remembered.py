"""A pure function of immutable objects, answered again from memory for the same objects.

A sync passes the whole model through the route table's steps, and at 100,000 hosts
asking each Server the same questions again (is it plain, what are its rules) cost about
a second per change. The model's memo hands the same Server object to every build while
its host is unchanged (model.Memo), so an answer kept by the object's identity is the
answer for it. Only the objects of the last call are kept: the memory follows the
cluster, and an id() cannot be reused while its entry holds the object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class Remembered(Generic[Item, Answer]):
    def __init__(self, function: Callable[[Item], Answer]) -> None:
        self.function = function
        self._entries: dict[int, tuple[Item, Answer]] = {}

    def each(self, items: Iterable[Item]) -> list[Answer]:
        """`function(item)` for each item, in order; forgets the items not asked about."""
        entries, kept, answers = self._entries, {}, []
        for item in items:
            entry = entries.get(id(item))
            if entry is None or entry[0] is not item:
                entry = (item, self.function(item))
            kept[id(item)] = entry
            answers.append(entry[1])
        self._entries = kept
        return answers
