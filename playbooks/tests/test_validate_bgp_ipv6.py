"""The frr role's checks and IPv6 VIPs: the drain, the undrain and lvs_pool's leave compare
frr_vips with what FRR and `ip` print, as text, so an IPv6 VIP written in another form
(uppercase, zeros not compressed) would never be found announced: the undrain would wait
until its timeout and fail. The role says so first, naming the address."""

import pytest
import test_frr_role
from test_frr_role import run_validation
from test_frr_vips_ipv6 import SETTINGS
from validation import assert_refused


@pytest.mark.parametrize("written", ["2001:DB8:183::100", "2001:db8:183:0:0:0:0:100"])
def test_an_ipv6_vip_in_another_form_stops_with_a_message(tmp_path, written):
    settings = test_frr_role.broken(
        lambda s: s.update(frr_vips=["198.51.100.100", written]), SETTINGS
    )
    expected = ("localhost: ", "frr_vips in its canonical form", written)
    assert_refused(run_validation(tmp_path, settings), expected)
