"""The daemon's settings (flags, config file, defaults), its JSON logs and sd_notify."""

import argparse
import importlib.metadata
import io
import json
import logging
import pathlib
import socket
import tomllib

import pytest
from edgeagent.metrics import Metrics

import edgeagent
from edgeagent import annotations, cli, logs, settings, systemd


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_win_over_the_config_file_which_wins_over_defaults(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "ingress-class: lab\n"
        "publish-status-address: [198.51.100.100, edge.example.com]\n"
        "watch-ingress-without-class: true\n"
        "reload-command: [systemctl, reload, nginx]\n"
        "sync-max-delay: 2\n"
    )
    values = settings.resolve(parse("--config", str(config), "--sync-max-delay", "0.5"))
    assert values.serving.ingress_class == "lab"
    assert values.status.addresses == ("198.51.100.100", "edge.example.com")
    assert values.serving.watch_ingress_without_class is True
    assert values.apply.reload_command == ("systemctl", "reload", "nginx")
    assert values.sync.max_delay == 0.5
    assert values.apply.nginx_dir == "/etc/nginx/edgeagent"
    assert values.daemon.health_listen == "127.0.0.1:10254"
    addresses = settings.resolve(parse("--publish-status-address", "a.example,192.0.2.1"))
    assert addresses.status.addresses == ("a.example", "192.0.2.1")


def test_each_option_has_a_flag_of_its_own_and_defaults_are_the_components():
    assert len(settings.flags()) == len(set(settings.flags()))
    assert settings.resolve(parse()) == settings.AgentSettings()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("ingress-clas: edge\n", "unknown settings ingress-clas"),
        ("watch-ingress-without-class: yes please\n", "watch-ingress-without-class"),
        ("listen-http: 80\n", "listen-http"),
        ("sync-quiet-period: -1\n", "negative"),
        ("ingress-class: Not_A_Name\n", "ingress-class"),
        ("- a list\n", "mapping"),
        ("proxy-read-timeout: 60s\n", "proxy-read-timeout"),
        ("ssl-redirect: maybe\n", "ssl-redirect"),
        ("annotations-prefix: Not/Valid\n", "annotations-prefix"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(tmp_path, text, error):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(settings.ConfigError, match=error):
        settings.resolve(parse("--config", str(config)))


def test_ingress_nginx_defaults_from_flags_and_the_config_file(tmp_path):
    """The role writes YAML booleans and numbers; flags are text."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "annotations-prefix: ingress.example.com\n"
        "ssl-redirect: false\n"
        "hsts-max-age: 600\n"
        "proxy-read-timeout: 86400\n"
        "proxy-body-size: 8m\n"
    )
    values = settings.resolve(parse("--config", str(config), "--hsts-preload", "true"))
    assert values.annotations == annotations.Config(
        annotations_prefix="ingress.example.com",
        ssl_redirect=False,
        hsts_max_age=600,
        hsts_preload=True,
        proxy_read_timeout=86400,
        proxy_body_size="8m",
    )
    assert settings.resolve(parse()).annotations == annotations.Config()


def test_json_logs_carry_object_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("edgeagent.test")
    logger.addHandler(handler)
    try:
        logger.warning(
            "path is invalid", extra={"namespace": "ns", "object_name": "web", "kind": "Ingress"}
        )
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["message"] == "path is invalid"
    assert (record["namespace"], record["name"], record["kind"]) == ("ns", "web", "Ingress")
    assert (record["level"], record["logger"]) == ("warning", "edgeagent.test")


def test_sd_notify_speaks_to_the_notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify("READY=1", "STATUS=ok")
        assert receiver.recv(100) == b"READY=1\nSTATUS=ok"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not systemd.notify("READY=1")
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    assert systemd.watchdog_interval() == 5.0


def test_version_is_pyproject_s(capsys):
    pyproject = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
    version = tomllib.loads(pyproject.read_text())["project"]["version"]
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"edgeagent {version}\n"
    metrics = Metrics()
    assert metrics.registry.get_sample_value("edgeagent_build_info", {"version": version}) == 1
    assert metrics.registry.get_sample_value("process_cpu_seconds_total") is not None


def test_version_of_uninstalled_sources_is_read_from_pyproject(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert edgeagent._version() == edgeagent.__version__
