"""`BatchPeerHandler`: the UPDATEs of one read reach the application as one list, in order;
other events (End-of-RIB, ...) split the runs so their place in the stream is kept."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from bgp.aio.peer import BgpPeer, TransportOptions
from bgp.aio.transport import SessionProtocol
from bgp.events import BgpEvent, EndOfRibReceived, UpdateReceived
from bgp.types import IPV4_UNICAST, Family
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.model import Update
from bgp.wire.packing import end_of_rib, pack_announcements
from bgp.wire.prefix import Nlri, Prefix

from ._util import ROUTER_A, Recorder, config, peer_pair, wait_until


@dataclass
class BatchRecorder(Recorder):
    batches: list[list[Update]] = field(default_factory=list)
    log: list[object] = field(default_factory=list)

    def on_updates(self, peer: BgpPeer, updates: list[Update]) -> None:
        self.batches.append(list(updates))
        self.log.append(("updates", len(updates)))
        for update in updates:
            self.on_update(peer, update)

    def on_end_of_rib(self, peer: BgpPeer, family: Family) -> None:
        self.log.append(("eor", family))
        super().on_end_of_rib(peer, family)


def _update(i: int) -> Update:
    return Update(withdrawn=(Nlri(Prefix.parse(f"10.0.{i}.0/24")),))


def test_runs_of_updates_are_split_by_other_events_and_keep_order() -> None:
    rec = BatchRecorder()
    peer = BgpPeer(config(65001, ROUTER_A, 65002, peer_address="127.0.0.2"),
                   TransportOptions("127.0.0.2"), rec)
    proto = object.__new__(SessionProtocol)  # only its identity matters here
    peer._proto = proto
    events: list[BgpEvent] = [UpdateReceived(_update(0)), UpdateReceived(_update(1)),
                              EndOfRibReceived(IPV4_UNICAST), UpdateReceived(_update(2))]
    peer._on_events(proto, events)
    assert rec.log == [("updates", 2), ("eor", IPV4_UNICAST), ("updates", 1)]
    assert [u.withdrawn for u in rec.updates] == [_update(i).withdrawn for i in range(3)]
    # a session the application does not see (a collision's second connection): nothing
    rec.log.clear()
    peer._on_events(object.__new__(SessionProtocol), events[:2])
    assert rec.log == []


def test_a_plain_handler_still_gets_one_call_per_update() -> None:
    rec = Recorder()
    peer = BgpPeer(config(65001, ROUTER_A, 65002, peer_address="127.0.0.2"),
                   TransportOptions("127.0.0.2"), rec)
    proto = object.__new__(SessionProtocol)
    peer._proto = proto
    peer._on_events(proto, [UpdateReceived(_update(0)), UpdateReceived(_update(1))])
    assert len(rec.updates) == 2


async def test_updates_of_one_read_arrive_as_one_batch() -> None:
    async with peer_pair() as p:
        rec = BatchRecorder()
        p.b.handler = rec
        await wait_until(lambda: p.a.established and p.b.established, what="Established")
        ctx = p.a.negotiated
        assert ctx is not None
        attrs = AttrSet.make(as_path=AsPath.sequence(65001),
                             next_hop=ipaddress.IPv4Address("127.0.0.1"))
        # 40 small UPDATEs and End-of-RIB, written at once
        msgs = [m for i in range(40)
                for m in pack_announcements(IPV4_UNICAST, attrs,
                                            [Nlri(Prefix.parse(f"10.1.{i}.0/24"))], ctx)]
        p.a.send([*msgs, end_of_rib(IPV4_UNICAST, ctx)])
        await wait_until(lambda: rec.eors, what="End-of-RIB")
        assert sum(len(b) for b in rec.batches) == 40
        assert len(rec.batches) < 40  # at least some arrived together
        assert rec.log[-1] == ("eor", IPV4_UNICAST)  # after every UPDATE before it
        assert rec.prefixes() == {f"10.1.{i}.0/24" for i in range(40)}
