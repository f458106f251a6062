"""remembered.Remembered: one call per object while the same object is asked about, a new
one for an equal but different object, and only the last call's objects kept."""

from edgeagent.remembered import Remembered


def test_the_same_objects_are_answered_from_memory_and_others_anew():
    calls = []
    lengths = Remembered(lambda items: calls.append(items) or len(items))
    first, second = ["a"], ["b", "c"]
    assert lengths.each([first, second]) == [1, 2]
    assert lengths.each([second, first]) == [2, 1]
    assert calls == [first, second]
    equal = ["a"]  # equal to `first`, not the same object: may differ in what it holds
    assert lengths.each([equal]) == [1]
    assert calls[-1] is equal


def test_only_the_objects_of_the_last_call_are_kept():
    calls = []
    lengths = Remembered(lambda items: calls.append(items) or len(items))
    first, second = ["a"], ["b"]
    lengths.each([first, second])
    lengths.each([second])
    lengths.each([first])
    assert calls == [first, second, first]
