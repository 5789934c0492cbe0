"""The value types' own rules: canonical addresses, a stable order of kinds."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from bondha.model import Kind, ObjectRef, RoutingObject, normalize_address


def _ipaddress_text(raw: str) -> str:
    """What an address normalises to: ipaddress's text, or the stripped text it cannot read."""
    text = raw.strip()
    try:
        return str(ipaddress.ip_interface(text))
    except ValueError:
        return text


octets = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "010", "255", "-1"]))
prefixes = st.one_of(st.just(""), st.integers(0, 40).map(lambda n: f"/{n}"),
                     st.sampled_from(["/", "/08", "/032", "/255.255.255.0", "/0.0.0.255", "/x"]))
ipv4ish = st.builds(lambda a, b, c, d, p, pad: f"{pad}{a}.{b}.{c}.{d}{p}{pad}",
                    octets, octets, octets, octets, prefixes, st.sampled_from(["", " ", "\t"]))
addresses = st.one_of(ipv4ish, st.ip_addresses().map(str), st.text(max_size=20),
                      st.sampled_from(["2001:DB8::1/64", "::ffff:10.0.0.1", "1.2.3", "1.2.3.4.5",
                                       "\u0661.\u0662.\u0663.\u0664", "10.0.0.1/24 ",
                                       "10.0.0.1\n"]))


@given(addresses)
def test_an_address_normalises_to_the_text_ipaddress_writes(raw: str) -> None:
    assert normalize_address(raw) == _ipaddress_text(raw)


@given(addresses)
def test_a_routing_object_holds_its_address_normalised(raw: str) -> None:
    ref = ObjectRef(1, Kind.CONNECTED_IP, 1)
    assert RoutingObject(ref, True, raw).address == _ipaddress_text(raw)
    assert RoutingObject(ref, True).address is None


def test_kinds_sort_in_config_order_and_hash_as_themselves() -> None:
    assert sorted([Kind.CPE_NAT_IP, Kind.ROUTE, Kind.CONNECTED_IP]) == list(Kind)
    assert not Kind.ROUTE < Kind.CONNECTED_IP
    assert {Kind.ROUTE: 1}[Kind("routes")] == 1
    assert [k.label for k in Kind] == ["connected IP", "route", "CPE NAT IP"]
    assert [k.config_stem for k in Kind] == ["connected_ip", "route", "cpe_nat_ip"]
