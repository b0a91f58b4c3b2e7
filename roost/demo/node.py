"""A demo node without a namespace: ``python -m roost.demo.node -c FILE --interface
eth0=10.0.0.1/24``.

The same daemon as `roost run -c FILE` (configuration, sessions, decision, dry-run kernel
sink), except for one input: the interfaces the tunnel policy decides the device from are
the ones given, the node's interfaces in the demo topology, instead of this machine's. So
a node whose BGP session runs over a 127.x address prints exactly the `ip route` commands
it would run on its host in the topology (`via 10.0.0.2 dev eth0 onlink`, or `dev tunl0`
for a next hop on another subnet).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys

from kernel import TunnelMode, TunnelPolicy
from roost import config as cfg


def _interface(text: str) -> tuple[str, ipaddress.IPv4Interface]:
    name, sep, cidr = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=ADDRESS/LEN, not {text!r}")
    try:
        return name, ipaddress.IPv4Interface(cidr)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roost.demo.node")
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--interface", type=_interface, action="append", default=[],
                        help="NAME=ADDRESS/LEN, the node's interfaces in the topology")
    args = parser.parse_args(argv)
    try:
        config = cfg.load(args.config)
    except cfg.ConfigError as exc:
        print("\n".join(map(str, exc.issues)), file=sys.stderr)
        return 1
    if not config.kernel.dry_run:
        # Routes decided for another host's interfaces must never reach this kernel.
        print(f"{args.config}: a demo node needs [kernel] dry_run = true", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    from roost import daemon

    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    interfaces: dict[str, list[ipaddress.IPv4Interface]] = {}
    for name, iface in args.interface:
        interfaces.setdefault(name, []).append(iface)
    k = config.kernel

    async def run() -> int:
        node = daemon.Daemon(config)
        node.tunnel = TunnelPolicy(
            interfaces=interfaces,
            modes={p.cidr: TunnelMode(p.tunnel) for p in k.pools},
            default=TunnelMode(k.tunnel),
            tunnel_device=k.tunnel_device,
        )
        return await node.run()

    try:
        return asyncio.run(run())
    except daemon.StartupError as exc:
        print(f"roost: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
