"""The apply pipeline against a real nginx: stage, nginx -t, swap, reload, confirm."""

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time

import pytest
from agentlab import Nginx, assert_complete, render_generation
from edgeagent.apply import Applier, ApplyError, Outcome
from edgeagent.cli import self_signed
from support_http import request


@pytest.fixture
def nginx(tmp_path):
    started = Nginx(tmp_path / "nginx").start()
    yield started
    started.stop()


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
    assert stat.S_IMODE((generation_dir / "certs" / "default_t.pem").stat().st_mode) == 0o600
    assert applier.apply(rendered).outcome is Outcome.UNCHANGED


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
