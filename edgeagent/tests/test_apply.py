"""The apply pipeline against a real nginx: stage, nginx -t, swap, reload, confirm."""

import errno
import json
import os
import pathlib
import random
import signal
import stat
import subprocess
import sys
import time

import pytest
from agentlab import Nginx, assert_complete, eventually, render_generation, replace_with_garbage
from edgeagent.apply import Applier, ApplyError, Outcome
from edgeagent.cli import self_signed
from support_http import free_port, request


def healthz(nginx):
    return request(nginx.http_port, "any.example.com", "/healthz").status


def live(nginx):
    return os.readlink(nginx.agent_dir / "current")


def test_apply_writes_validates_swaps_and_confirms(nginx):
    applier = Applier(nginx.apply_settings())
    rendered = render_generation(nginx, "127.0.0.2", tls_pairs={"t": self_signed("h0.example.com")})
    result = applier.apply(rendered)
    assert result.outcome is Outcome.APPLIED, result.detail
    assert live(nginx) == f"gen-{rendered.generation}"
    assert applier.serving_generation() == rendered.generation
    generation_dir = nginx.agent_dir / live(nginx)
    assert (generation_dir / "edge.conf").read_bytes() == rendered.files["edge.conf"]
    assert stat.S_IMODE((generation_dir / "edge.conf").stat().st_mode) == 0o644
    # nginx's master (not root) reads them through the agent's group.
    assert stat.S_IMODE((generation_dir / "certs" / "default_t.pem").stat().st_mode) == 0o640
    assert applier.apply(rendered).outcome is Outcome.UNCHANGED


def test_nginx_group_reads_a_generation_under_the_units_umask(nginx):
    """The unit runs the agent with UMask=0077; nginx's master (not root, in the agent's group)
    must still enter every directory and read every file of a generation."""
    applier = Applier(nginx.apply_settings())
    rendered = render_generation(nginx, "127.0.0.2", tls_pairs={"t": self_signed("h0.example.com")})
    previous = os.umask(0o077)
    try:
        assert applier.apply(rendered).outcome is Outcome.APPLIED
    finally:
        os.umask(previous)
    generation_dir = nginx.agent_dir / f"gen-{rendered.generation}"
    for path in [generation_dir, *generation_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = stat.S_IRGRP | (stat.S_IXGRP if path.is_dir() else 0)
        assert mode & wanted == wanted, f"{path}: {oct(mode)}"
        assert not mode & stat.S_IWOTH, f"{path}: {oct(mode)}"
        if path.suffix == ".pem":  # keys: nobody but the agent and nginx's group
            assert not mode & stat.S_IROTH, f"{path}: {oct(mode)}"


def test_certificates_the_live_generation_holds_are_linked_not_written_again(nginx):
    applier = Applier(nginx.apply_settings())
    pairs = {"t": self_signed("h0.example.com")}
    first = render_generation(nginx, "127.0.0.2", tls_pairs=pairs)
    assert applier.apply(first).outcome is Outcome.APPLIED
    second = render_generation(nginx, "127.0.0.3", tls_pairs=pairs)
    assert applier.apply(second).outcome is Outcome.APPLIED
    old, new = (
        nginx.agent_dir / f"gen-{rendered.generation}" / "certs" / "default_t.pem"
        for rendered in (first, second)
    )
    assert new.read_bytes() == second.files["certs/default_t.pem"]
    assert new.stat().st_ino == old.stat().st_ino
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    other = render_generation(nginx, "127.0.0.3", tls_pairs={"t": self_signed("h0.example.com")})
    assert applier.apply(other).outcome is Outcome.APPLIED
    renewed = nginx.agent_dir / f"gen-{other.generation}" / "certs" / "default_t.pem"
    assert renewed.stat().st_ino != new.stat().st_ino
    assert renewed.read_bytes() == other.files["certs/default_t.pem"]


def test_a_candidate_nginx_rejects_is_kept_aside_and_current_stays(nginx):
    applier = Applier(nginx.apply_settings())
    good = render_generation(nginx, "127.0.0.2")
    assert applier.apply(good).outcome is Outcome.APPLIED
    nginx.key.unlink()
    bad = render_generation(nginx, "127.0.0.3")
    result = applier.apply(bad)
    assert result.outcome is Outcome.REJECTED
    assert live(nginx) == f"gen-{good.generation}"
    assert applier.serving_generation() == good.generation
    rejected = nginx.agent_dir / f"rejected-{bad.generation}"
    assert "default.key" in (rejected / "nginx-t.txt").read_text()
    assert (rejected / "edge.conf").exists()
    assert not (nginx.agent_dir / f"gen-{bad.generation}").exists()


@pytest.mark.parametrize("reload_command", [("false",), ("true",)])
def test_a_failed_or_unconfirmed_reload_puts_current_back(nginx, reload_command):
    good = render_generation(nginx, "127.0.0.2")
    assert Applier(nginx.apply_settings()).apply(good).outcome is Outcome.APPLIED
    applier = Applier(nginx.apply_settings(reload_command=reload_command, confirm_timeout=0.5))
    result = applier.apply(render_generation(nginx, "127.0.0.3"))
    assert result.outcome is Outcome.FAILED
    assert "reload command exited 1" in result.detail or "did not serve" in result.detail
    assert live(nginx) == f"gen-{good.generation}"


def test_an_unconfirmed_reload_that_took_effect_keeps_current_on_the_new_generation(nginx):
    """The confirmation fails (its status address answers nothing) while nginx did reload:
    nginx gave no sign of still serving the old generation, the candidate passed nginx -t
    as a whole, so `current` stays where nginx is."""
    good = render_generation(nginx, "127.0.0.2")
    assert Applier(nginx.apply_settings()).apply(good).outcome is Outcome.APPLIED
    blind = Applier(
        nginx.apply_settings(status_listen=f"127.0.0.1:{free_port()}", confirm_timeout=0.5)
    )
    new = render_generation(nginx, "127.0.0.3")
    result = blind.apply(new)
    assert result.outcome is Outcome.FAILED
    assert "stays on" in result.detail
    assert live(nginx) == f"gen-{new.generation}"
    eventually(lambda: Applier(nginx.apply_settings()).serving_generation() == new.generation)


def test_the_first_apply_validates_in_full_then_only_what_changed(nginx):
    applier = Applier(nginx.apply_settings())
    first = applier.apply(render_generation(nginx, "127.0.0.2", hosts=3))
    assert first.outcome is Outcome.APPLIED
    assert first.validation == "full: no generation validated by this process serves yet"
    more = render_generation(nginx, "127.0.0.2", hosts=4)
    second = applier.apply(more)
    # The new host's server and the status server; the rest is the serving generation's.
    assert (second.outcome, second.validation) == (Outcome.APPLIED, "delta: 2 of 8 blocks")
    eventually(lambda: applier.serving_generation() == more.generation)
    delta = (nginx.agent_dir / ".validate" / "edge.conf").read_text()
    assert "server_name h3.example.com;" in delta
    assert "server_name h2.example.com;" not in delta
    assert "upstream " in delta  # the one h3 proxies to
    assert "default_server" in delta

    # A new process knows no validated generation: full again.
    restarted = Applier(nginx.apply_settings())
    third = restarted.apply(render_generation(nginx, "127.0.0.3", hosts=4))
    assert third.validation.startswith("full: no generation")
    # A change of the http-level block (a long host name needs bigger hash buckets): full.
    long_host = render_generation(nginx, "127.0.0.3", hosts=4, long_host=True)
    assert restarted.apply(long_host).validation == "full: the http block changed"
    # A change of the live main config: full.
    nginx.main_conf.write_text(nginx.main_conf.read_text() + "# changed\n")
    changed_main = restarted.apply(render_generation(nginx, "127.0.0.4", hosts=4))
    assert changed_main.validation == "full: the main config changed"


def test_a_full_validation_runs_at_least_every_interval(nginx):
    applier = Applier(nginx.apply_settings(full_validation_interval=0))
    applier.apply(render_generation(nginx, "127.0.0.2"))
    second = applier.apply(render_generation(nginx, "127.0.0.3"))
    assert second.validation == "full: the last full validation is too old"


def test_delta_validation_refuses_a_bad_changed_block(nginx):
    applier = Applier(nginx.apply_settings())
    good = render_generation(nginx, "127.0.0.2")
    assert applier.apply(good).outcome is Outcome.APPLIED
    bad = render_generation(nginx, "127.0.0.2", tls_pairs={"t": self_signed("h0.example.com")})
    staged = applier.stage(bad)  # then broken on disk, where only nginx -t can see it
    replace_with_garbage(staged / "certs" / "default_t.pem")
    result = applier.apply(bad)
    assert (result.outcome, result.validation) == (Outcome.REJECTED, "delta: 2 of 7 blocks")
    assert live(nginx) == f"gen-{good.generation}"
    rejected = nginx.agent_dir / f"rejected-{bad.generation}"
    assert "default_t.pem" in (rejected / "nginx-t.txt").read_text()
    assert "server_name h0.example.com;" in (rejected / "nginx-t-delta.conf").read_text()


@pytest.mark.parametrize("baseline", [True, False], ids=["delta", "full"])
def test_a_rejection_names_the_servers_nginx_refuses_on_their_own(nginx, baseline):
    """Bisection over the changed servers (every server without a baseline) finds
    exactly the broken ones, for the controller to quarantine (quarantine.py)."""
    applier = Applier(nginx.apply_settings())
    if baseline:
        baseline_generation = render_generation(nginx, "127.0.0.2", hosts=6)
        assert applier.apply(baseline_generation).outcome is Outcome.APPLIED
    pairs = {name: self_signed(f"h{n}.example.com") for n, name in enumerate("tuvw")}
    candidate = render_generation(nginx, "127.0.0.3", hosts=6, tls_pairs=pairs)
    staged = applier.stage(candidate)
    for broken in ("u", "w"):  # the servers of h1 and h3
        replace_with_garbage(staged / "certs" / f"default_{broken}.pem")
    result = applier.apply(candidate)
    assert result.outcome is Outcome.REJECTED
    assert result.offenders == ("server h1.example.com", "server h3.example.com")


def test_a_rejection_of_the_shared_blocks_names_no_server(nginx):
    applier = Applier(nginx.apply_settings())
    nginx.key.unlink()  # the default server's key: no object's fault
    result = applier.apply(render_generation(nginx, "127.0.0.2", hosts=3))
    assert (result.outcome, result.offenders) == (Outcome.REJECTED, ())


def test_a_reload_nginx_refuses_after_a_valid_delta_puts_current_back(nginx):
    """The delta argument's safety net: a block the delta left out is broken (here by
    hand), so nginx refuses the reload and keeps serving; `current` goes back, a full
    nginx -t names the candidate rejected, and the next validation is full."""
    pairs = {"t": self_signed("h0.example.com")}
    applier = Applier(nginx.apply_settings(confirm_timeout=2.0))
    good = render_generation(nginx, "127.0.0.2", tls_pairs=pairs)
    assert applier.apply(good).outcome is Outcome.APPLIED
    candidate = render_generation(nginx, "127.0.0.2", hosts=4, tls_pairs=pairs)
    staged = applier.stage(candidate)
    replace_with_garbage(staged / "certs" / "default_t.pem")  # h0's server: unchanged
    result = applier.apply(candidate)
    assert result.outcome is Outcome.REJECTED, result.detail
    assert result.validation.startswith("delta")
    assert "nginx -t on the whole candidate" in result.detail
    assert live(nginx) == f"gen-{good.generation}"
    assert applier.serving_generation() == good.generation  # nginx never took it
    assert (nginx.agent_dir / f"rejected-{candidate.generation}" / "nginx-t.txt").exists()
    fixed = render_generation(nginx, "127.0.0.3", hosts=4, tls_pairs=pairs)
    assert applier.apply(fixed).validation.startswith("full: no generation")


def test_a_swapped_but_not_reloaded_generation_is_reloaded_on_the_next_run(nginx):
    applier = Applier(nginx.apply_settings())
    rendered = render_generation(nginx, "127.0.0.2")
    applier.stage(rendered)
    (nginx.agent_dir / "current").unlink()  # as if killed right after the swap
    (nginx.agent_dir / "current").symlink_to(f"gen-{rendered.generation}")
    assert applier.serving_generation() is None  # still the bootstrap
    assert applier.apply(rendered).outcome is Outcome.APPLIED
    assert applier.serving_generation() == rendered.generation


def test_the_shadow_config_tests_the_candidate_with_the_live_settings(nginx, tmp_path):
    (nginx.root / "extra.conf").write_text("# included relative to the main config\n")
    main = nginx.main_conf.read_text().replace("http {", "include extra.conf;\nhttp {", 1)
    nginx.main_conf.write_text(main)
    applier = Applier(nginx.apply_settings())
    candidate = applier.stage(render_generation(nginx, "127.0.0.2"))
    shadow = applier.shadow_config(candidate).read_text()
    assert f"include {candidate}/edge.conf;" in shadow
    assert f"include {nginx.root}/extra.conf;" in shadow
    assert f"pid {nginx.agent_dir}/.validate/nginx.pid;" in shadow
    assert "current/edge.conf" not in shadow
    applier.validate(candidate)

    nginx.main_conf.write_text(main.replace("/current/edge.conf", "/elsewhere/edge.conf"))
    with pytest.raises(ApplyError, match="must include"):
        applier.shadow_config(candidate)


def test_old_generations_and_debris_are_removed(nginx):
    applier = Applier(nginx.apply_settings(keep_generations=2, keep_rejected=1))
    (nginx.agent_dir / ".staging-dead-1").mkdir()
    (nginx.agent_dir / ".current-1").symlink_to("bootstrap")
    for n in range(5):
        assert (
            applier.apply(render_generation(nginx, f"127.0.0.{2 + n}")).outcome is Outcome.APPLIED
        )
    names = sorted(p.name for p in nginx.agent_dir.iterdir())
    assert len([n for n in names if n.startswith("gen-")]) == 3  # current and two more
    assert not [n for n in names if n.startswith((".staging-", ".current-"))]
    assert "bootstrap" in names


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (the tests run as root), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(directory) -> pathlib.Path:
    """Fill the filesystem of `directory` but for a few blocks; returns the filler."""
    filler = directory / "filler"
    with open(filler, "wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    os.truncate(filler, filler.stat().st_size - 16384)
    return filler


def test_a_full_disk_mid_apply_keeps_current_whole(small_disk):
    """ENOSPC while a generation is staged: `current` stays on the whole generation that
    serves, nginx keeps serving it, and once there is room the same candidate applies."""
    nginx = Nginx(small_disk / "nginx").start()
    try:
        applier = Applier(nginx.apply_settings())
        good = render_generation(nginx, "127.0.0.2")
        assert applier.apply(good).outcome is Outcome.APPLIED
        pairs = {f"t{n}": self_signed(f"h{n}.example.com") for n in range(30)}
        big = render_generation(nginx, "127.0.0.3", hosts=30, tls_pairs=pairs)
        filler = fill(small_disk)
        result = applier.apply(big)
        assert result.outcome is Outcome.FAILED
        assert "No space left on device" in result.detail
        assert live(nginx) == f"gen-{good.generation}"
        assert_complete(nginx.agent_dir, nginx.main_conf)
        assert applier.serving_generation() == good.generation
        assert healthz(nginx) == 200

        filler.unlink()
        assert applier.apply(big).outcome is Outcome.APPLIED
        assert_complete(nginx.agent_dir, nginx.main_conf)
        assert not list(nginx.agent_dir.glob(".staging-*"))
    finally:
        nginx.stop()


def test_rejected_candidates_are_pruned_at_each_rejection(nginx):
    """A state nginx keeps refusing (no apply in between) keeps `keep_rejected` of them."""
    applier = Applier(nginx.apply_settings(keep_rejected=2))
    nginx.key.unlink()  # every candidate is refused
    for n in range(4):
        candidate = render_generation(nginx, f"127.0.0.{2 + n}")
        assert applier.apply(candidate).outcome is Outcome.REJECTED
    rejected = {p.name for p in nginx.agent_dir.glob("rejected-*")}
    assert len(rejected) == 2
    assert f"rejected-{candidate.generation}" in rejected  # the newest is kept


def test_sigkill_at_any_moment_of_the_pipeline(nginx, tmp_path):
    """An applier applying back to back, killed with SIGKILL at random moments, 12 times."""
    state = tmp_path / "state.json"
    ports = [nginx.http_port, nginx.https_port, nginx.status_port]
    state.write_text(json.dumps({"root": str(nginx.root), "ports": ports}))
    script = os.path.join(os.path.dirname(__file__), "apply_loop.py")
    loop = subprocess.Popen(
        [sys.executable, script, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    rng = random.Random(11)
    interrupted = applied = 0
    try:
        for _ in range(12):
            loop.stdin.write("go\n")
            loop.stdin.flush()
            line = loop.stdout.readline()
            while line.startswith("applied"):  # the previous child's last words
                applied, line = applied + 1, loop.stdout.readline()
            assert line.startswith("child "), line
            time.sleep(rng.uniform(0.0, 0.8))  # a child's first apply takes about 0.5 s
            os.kill(int(line.split()[1]), signal.SIGKILL)
            entries = [p.name for p in nginx.agent_dir.iterdir()]
            interrupted += any(e.startswith((".staging-", ".current-")) for e in entries)
            assert_complete(nginx.agent_dir, nginx.main_conf)
            served = Applier(nginx.apply_settings()).serving_generation()
            if served is not None:  # None: killed before its first reload, bootstrap serves
                assert (nginx.agent_dir / f"gen-{served}" / "edge.conf").exists()
            assert healthz(nginx) == 200  # nginx answers throughout
    finally:
        loop.kill()
        loop.wait(5)
    print(f"SIGKILL x12: {interrupted} kills left debris; {applied} applies completed")
