"""Extended communities: `add_ext_community` in export policies (config -> policy action)
and their text form in `show routes` (bgp.speaker.format_ext_community)."""

from __future__ import annotations

import pytest

from bgp.policy import AddExtCommunity, _modify
from bgp.speaker import format_ext_community
from bgp.wire.attributes import AttrSet
from roost import config as cfg

CONF = """
[router]
asn = 65001
id = "10.0.0.1"

[policy.out]
default = "accept"
[[policy.out.term]]
name = "tag"
match = { prefix = ["10.0.0.0/8"] }
then = { action = "accept", add_ext_community = %s }
"""


@pytest.mark.parametrize("text, value", [
    ("rt:65001:5", 0x0002_FDE9_0000_0005),
    ("soo:65001:7", 0x0003_FDE9_0000_0007),
    ("rt:4200000001:9", 0x0202_FA56_EA01_0009),
    ("rt:10.0.0.1:7", 0x0102_0A00_0001_0007),
])
def test_parse_and_format(text: str, value: int) -> None:
    conf = cfg.loads(CONF % f'["{text}"]')
    then = conf.policies["out"].terms[0].then
    assert then.add_ext_community == (value,)
    assert format_ext_community(value) == text


@pytest.mark.parametrize("bad", ['"rt:1.2.3:4"', '"target:1:2"', '"rt:4200000001:70000"',
                                 '"rt:65001:4294967296"', "5"])
def test_rejects(bad: str) -> None:
    with pytest.raises(cfg.ConfigError, match="add_ext_community"):
        cfg.loads(CONF % f"[{bad}]")


def test_other_types_as_hex() -> None:
    assert format_ext_community(0x8000_0000_0000_0001) == "0x8000000000000001"


def test_action_adds_once() -> None:
    a = AttrSet.make(ext_communities=(1,))
    b = _modify(a, AddExtCommunity(2), None)  # type: ignore[arg-type]
    assert b.ext_communities == (1, 2)
    assert _modify(b, AddExtCommunity(2), None) is b  # type: ignore[arg-type]
