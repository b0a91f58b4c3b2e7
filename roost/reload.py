"""What a reload changes: the running configuration and the new file in, a plan out.

Pure (no asyncio, no sockets): `plan(old, new)` compares two validated `Config`s and says
which peers start, stop, are reset or only get their policies applied again, which
originated prefixes come and go, and which changes need a restart. `roost.daemon`
carries the plan out; the tests check it without a running daemon.

Only what a session negotiates or how it connects resets it (hold time, families,
ADD-PATH, password, addresses, ...). Import and export policies are applied in place
(soft reconfiguration, RFC 4271 §9.1.1 / §9.1.3); a name or description is cosmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from roost import config as cfg

#: `PeerConfig` fields whose change needs no new session.
SOFT_FIELDS = frozenset({"import_policy", "export_policy", "name", "description"})

#: Settings read once at start-up (sockets, identity, the kernel sink, the reflection
#: rules, graceful restart timers): a reload reports a change and keeps the old value.
RESTART_ONLY = (
    "router.asn", "router.id", "router.listen", "router.port", "router.next_hop",
    "router.next_hop6", "router.ebgp_requires_policy", "router.graceful_restart",
    "kernel", "control", "reflector", "metrics",
)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The differences between the running configuration and a new one. Peers are
    named by their key, the address as a string (as in `show peers`)."""

    peers_added: tuple[cfg.PeerConfig, ...] = ()
    peers_removed: tuple[str, ...] = ()
    peers_reset: tuple[cfg.PeerConfig, ...] = ()  # session settings changed: new session
    peers_refreshed: tuple[cfg.PeerConfig, ...] = ()  # policies re-applied, session kept
    peers_renamed: tuple[cfg.PeerConfig, ...] = ()  # name / description only
    prefixes_added: tuple[cfg.IPNetwork, ...] = ()
    prefixes_removed: tuple[cfg.IPNetwork, ...] = ()
    changed_policies: frozenset[str] = frozenset()
    needs_restart: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """The reply of `reload` (JSON): what was applied and what was not."""
        return {
            "peers_added": [str(p.address) for p in self.peers_added],
            "peers_removed": list(self.peers_removed),
            "peers_reset": [str(p.address) for p in self.peers_reset],
            "peers_refreshed": [str(p.address) for p in self.peers_refreshed],
            "prefixes_added": [str(n) for n in self.prefixes_added],
            "prefixes_removed": [str(n) for n in self.prefixes_removed],
            "policies_changed": sorted(self.changed_policies),
            "needs_restart": list(self.needs_restart),
        }

    @property
    def empty(self) -> bool:
        return not (self.peers_added or self.peers_removed or self.peers_reset
                    or self.peers_refreshed or self.peers_renamed or self.prefixes_added
                    or self.prefixes_removed or self.changed_policies or self.needs_restart)


def _restart_values(c: cfg.Config) -> tuple[Any, ...]:
    r = c.router
    return (r.asn, r.router_id, r.listen, r.port, r.next_hop, r.next_hop6,
            r.ebgp_requires_policy, r.graceful_restart, c.kernel, c.control, c.reflector,
            c.metrics)


def needs_restart(old: cfg.Config, new: cfg.Config) -> tuple[str, ...]:
    """The restart-only settings that differ (names as in RESTART_ONLY)."""
    return tuple(name for name, a, b in zip(RESTART_ONLY, _restart_values(old),
                                           _restart_values(new), strict=True) if a != b)


def session_fields_changed(old: cfg.PeerConfig, new: cfg.PeerConfig) -> tuple[str, ...]:
    """The fields outside SOFT_FIELDS that differ: any of them needs a new session."""
    return tuple(f.name for f in fields(cfg.PeerConfig)
                 if f.name not in SOFT_FIELDS and getattr(old, f.name) != getattr(new, f.name))


def changed_policies(old: cfg.Config, new: cfg.Config) -> frozenset[str]:
    """Names of policies added, removed or whose terms changed."""
    return frozenset(n for n in set(old.policies) | set(new.policies)
                     if old.policies.get(n) != new.policies.get(n))


def uses(p: cfg.PeerConfig, policies: frozenset[str]) -> bool:
    return bool({p.import_policy, p.export_policy} & policies)


def plan(old: cfg.Config, new: cfg.Config) -> ReloadPlan:
    """Compare the running configuration with a new one (both validated)."""
    policies = changed_policies(old, new)
    running = {str(p.address): p for p in old.peers}
    wanted = {str(p.address): p for p in new.peers}
    added, reset, refreshed, renamed = [], [], [], []
    for key, want in wanted.items():
        have = running.get(key)
        if have is None:
            added.append(want)
        elif session_fields_changed(have, want):
            reset.append(want)
        elif (have.import_policy, have.export_policy) != (want.import_policy,
                                                          want.export_policy) \
                or uses(want, policies):
            refreshed.append(want)
        elif have != want:
            renamed.append(want)
    old_p, new_p = set(old.router.prefixes), set(new.router.prefixes)
    return ReloadPlan(
        peers_added=tuple(added),
        peers_removed=tuple(k for k in running if k not in wanted),
        peers_reset=tuple(reset),
        peers_refreshed=tuple(refreshed),
        peers_renamed=tuple(renamed),
        prefixes_added=tuple(sorted(new_p - old_p, key=_net_order)),
        prefixes_removed=tuple(sorted(old_p - new_p, key=_net_order)),
        changed_policies=policies,
        needs_restart=needs_restart(old, new),
    )


def running_config(old: cfg.Config, new: cfg.Config) -> cfg.Config:
    """The configuration in force after applying `new`: the restart-only settings keep
    their running values until a restart."""
    router = replace(new.router, asn=old.router.asn, router_id=old.router.router_id,
                     listen=old.router.listen, port=old.router.port,
                     next_hop=old.router.next_hop, next_hop6=old.router.next_hop6,
                     ebgp_requires_policy=old.router.ebgp_requires_policy,
                     graceful_restart=old.router.graceful_restart)
    return replace(new, path=old.path, router=router, control=old.control,
                   kernel=old.kernel, reflector=old.reflector, metrics=old.metrics)


def _net_order(net: cfg.IPNetwork) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)


__all__ = ["RESTART_ONLY", "SOFT_FIELDS", "ReloadPlan", "needs_restart", "plan",
           "running_config", "session_fields_changed"]
