"""RIBs and the decision process (RFC 4271 §3.2, §9): Adj-RIB-In, Loc-RIB, Adj-RIB-Out."""

from __future__ import annotations

from bgp.rib.adj_in import AdjRibIn
from bgp.rib.adj_out import AdjRibOut, Advert, OutDiff, PackingEncoder, UpdateEncoder
from bgp.rib.decision import (
    ALWAYS_REACHABLE,
    DEFAULT_LOCAL_PREF,
    BestReason,
    NextHopResolver,
    Selection,
    select,
)
from bgp.rib.loc_rib import BestChange, Destination, LocRib
from bgp.rib.path import DropReason, NextHopMode, Path, PeerInfo

__all__ = [
    "ALWAYS_REACHABLE",
    "DEFAULT_LOCAL_PREF",
    "AdjRibIn",
    "AdjRibOut",
    "Advert",
    "BestChange",
    "BestReason",
    "Destination",
    "DropReason",
    "LocRib",
    "NextHopMode",
    "NextHopResolver",
    "OutDiff",
    "PackingEncoder",
    "Path",
    "PeerInfo",
    "Selection",
    "UpdateEncoder",
    "select",
]
