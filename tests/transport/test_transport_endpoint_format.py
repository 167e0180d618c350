"""The offer endpoint of a referee behind NAT: "via IP:PORT[ IP:PORT]" (docs/protocol.md,
"Session transport"): written canonically, parsed back, refused when malformed."""

from __future__ import annotations

import pytest

from fairdht.errors import BadBody
from fairdht.records.kinds.referee import RefereeOffer
from fairdht.referee.offers import OfferedReach, relayed_endpoint


def test_a_relayed_endpoint_names_its_nodes_and_parses_back() -> None:
    text = relayed_endpoint((("198.18.1.10", 4000), ("2001:db8::1", 4000)))
    assert text == "via 198.18.1.10:4000 [2001:db8::1]:4000"
    offer = RefereeOffer(game="g", players=(), endpoint=text)
    reach = OfferedReach.parse(offer.endpoint)
    assert reach.direct is None
    assert reach.via == (("198.18.1.10", 4000), ("2001:db8::1", 4000))
    direct = OfferedReach.parse("198.18.1.10:7000")
    assert direct == OfferedReach(("198.18.1.10", 7000), ())


def test_only_as_many_nodes_as_fit_in_64_bytes_are_named() -> None:
    nodes = tuple((f"198.18.{i}.100", 40000 + i) for i in range(10))
    text = relayed_endpoint(nodes)
    assert len(text) <= 64
    RefereeOffer(game="g", players=(), endpoint=text)


@pytest.mark.parametrize(
    "text",
    [
        "via ",
        "via host:4000",
        "via 198.18.1.10:4000  198.18.2.10:4000",
        "via 1.2.3.4:0",
        "via 1.2.3.4:4000 1.2.3.4:4000",
        "via 001.2.3.4:4000",
        "relay 1.2.3.4:4000",
    ],
)
def test_malformed_relayed_endpoints_are_refused(text: str) -> None:
    with pytest.raises(BadBody):
        RefereeOffer(game="g", players=(), endpoint=text)
