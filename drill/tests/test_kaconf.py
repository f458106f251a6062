import pytest

from drill import kaconf

CONF = """\
# Ansible managed: the node's keepalived.conf
global_defs {
    router_id edge1
    vrrp_garp_master_repeat 5
    vrrp_garp_master_delay 0.5
}

static_ipaddress {
    198.51.100.100/32 dev lo scope global label lo:vrrp
}

vrrp_script check_nginx {
    script "/usr/bin/curl -fsS --max-time 0.3 http://127.0.0.1/healthz # not a comment"
    interval 1
    fall 2
    weight 0
}

vrrp_instance VI_EDGE {
    state BACKUP
    version 3
    advert_int 0.1
    priority 150
    preempt_delay 1.5
    unicast_peer {
        198.51.100.12
    }
    virtual_ipaddress {
        198.51.100.100/24 dev eth0
    }
    track_script {
        check_nginx
        check_edgeagent
    }
}
"""


def test_settings_of_a_rendered_config():
    assert kaconf.settings(CONF) == {
        "global": {"vrrp_garp_master_repeat": 5, "vrrp_garp_master_delay": 0.5},
        "static_ipaddress": ["198.51.100.100/32 dev lo scope global label lo:vrrp"],
        "vrrp_script": {
            "check_nginx": {"interval": 1, "timeout": None, "rise": None, "fall": 2, "weight": 0}
        },
        "vrrp_instance": [
            {
                "name": "VI_EDGE",
                "version": 3,
                "advert_int": 0.1,
                "priority": 150,
                "preempt": True,
                "preempt_delay": 1.5,
                "unicast": True,
                "track_script": ["check_nginx", "check_edgeagent"],
            }
        ],
    }


def test_quoted_hash_is_kept_and_nopreempt_is_read():
    root = kaconf.parse(CONF)
    assert root.blocks("vrrp_script")[0].value("script").endswith("# not a comment")
    text = "vrrp_instance VI {\n    nopreempt\n}\n"
    assert kaconf.settings(text)["vrrp_instance"][0]["preempt"] is False


@pytest.mark.parametrize("text", ["a {\n", "}\n"])
def test_unbalanced_braces_are_an_error(text):
    with pytest.raises(kaconf.ConfigError):
        kaconf.parse(text)
