"""`--gateway-address-mode dedicated` and the edge's own listen addresses: each dedicated
Gateway's address gets a default server (`listen ADDRESS:80 default_server`), so a pool
address that listen_http or listen_https names too would be two default servers of one
address and port, which nginx refuses with the whole configuration. The layout check says
so first; the shared mode, where the listens merge, keeps accepting it."""

import dataclasses

import pytest
from edgeagent.gateway.options import DEDICATED, SHARED
from edgeagent.grammar import Invalid
from test_render_golden import LAYOUT

from edgeagent import render

POOL = ("127.0.0.11", "2001:db8::11")


@pytest.mark.parametrize(
    "changes",
    [
        {"listen_http": "127.0.0.11:80"},
        {"listen_https": "[2001:db8:0::11]:443"},
    ],
    ids=["http", "https-ipv6"],
)
def test_a_pool_address_the_edge_listens_on_is_refused_in_the_dedicated_mode(changes):
    layout = dataclasses.replace(
        LAYOUT, gateway_addresses=POOL, gateway_address_mode=DEDICATED, **changes
    )
    with pytest.raises(Invalid, match="listens there too"):
        render.check_layout(layout)
    render.check_layout(dataclasses.replace(layout, gateway_address_mode=SHARED))


def test_other_listen_addresses_pass():
    layout = dataclasses.replace(LAYOUT, gateway_addresses=POOL, gateway_address_mode=DEDICATED)
    render.check_layout(layout)
    render.check_layout(dataclasses.replace(layout, listen_http="127.0.0.12:80"))
