"""bench/cpu_per_request.py's readings: /proc/PID/stat, strace -c's table and perf
report's rows, taken from the tools themselves; a text that is none of them is refused."""

import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import cpu_per_request


def test_cpu_seconds_of_a_process_that_spent_some():
    sum(range(3 * 10**6))
    user, system = cpu_per_request.cpu_seconds(os.getpid())
    assert user > 0 and system >= 0


def test_strace_counts_every_call_of_a_real_run(tmp_path):
    table = tmp_path / "strace.txt"
    subprocess.run(["strace", "-c", "-f", "-o", str(table), "ls", "/"], check=True,
                   capture_output=True)  # fmt: skip
    counts = cpu_per_request.syscall_counts(table.read_text())
    assert counts["execve"] == 1 and counts["getdents64"] >= 1 and "total" not in counts


PERF_REPORT = """\
# Samples: 244  of event 'cpu-clock:pppH'
# Overhead  Shared Object         Symbol                                 IPC   [IPC Coverage]
# ........  ....................  .....................................  ....................
#
    19.26%  libpython3.11.so.1.0  [.] _PyObject_Malloc                   -      -
     8.20%  [kernel.kallsyms]     [k] tcp_sendmsg_locked                 -      -
     1.64%  nginx                 [.] 0x000000000004f2a1                 -      -
"""


def test_perf_rows_are_read_without_their_ipc_columns():
    rows = cpu_per_request.hottest(PERF_REPORT)
    assert [(r["percent"], r["object"], r["kernel"], r["symbol"]) for r in rows] == [
        (19.26, "libpython3.11.so.1.0", False, "_PyObject_Malloc"),
        (8.2, "[kernel.kallsyms]", True, "tcp_sendmsg_locked"),
        (1.64, "nginx", False, "0x000000000004f2a1"),
    ]


@pytest.mark.parametrize(
    "read", [cpu_per_request.syscall_counts, cpu_per_request.hottest, cpu_per_request.by_object]
)
def test_another_text_is_refused(read):
    with pytest.raises(ValueError, match="no "):
        read("wrk: connection refused\n")


def test_perf_shares_by_object_of_a_real_run(tmp_path):
    data = tmp_path / "perf.data"
    subprocess.run(["perf", "record", "-q", "-o", str(data), "--", sys.executable, "-c",
                    "sum(range(10**7))"], check=True, capture_output=True)  # fmt: skip
    shown = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    shares = cpu_per_request.by_object(shown)
    assert 99 <= sum(shares.values()) <= 101
    assert "python" in max(shares, key=shares.get)  # the interpreter or its libpython
