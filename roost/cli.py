"""`roost`: run the daemon, check a configuration, query a running daemon, run the demo.

User errors (missing file, invalid configuration, daemon not running) print one clear
message on stderr and exit 1; command-line usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from roost import __version__, control
from roost import config as cfg

DEFAULT_SOCKET = cfg.DEFAULT_SOCKET
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"roost: {message}", err=True)
    sys.exit(code)


def _load(path: str) -> cfg.Config:
    try:
        return cfg.load(path)
    except cfg.ConfigError as exc:
        if len(exc.issues) == 1 and exc.issues[0].line is None and not exc.issues[0].key:
            _fail(str(exc.issues[0]))  # the file itself: missing, unreadable
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        n = len(exc.issues)
        _fail(f"{path}: {n} error{'s' if n != 1 else ''}; nothing was applied")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="roost", message="%(prog)s %(version)s")
def main() -> None:
    """roost: a BGP-4 speaker and route reflector for container hosts.

    Each host originates its container block, peers with the other hosts (full iBGP mesh)
    or with its rack's route reflector, and installs the routes it learns in the kernel
    (`proto bird`, via eth0 or tunl0).

    \b
    Typical use:
      roost check -c /etc/roost/roost.toml     validate a configuration
      roost run -c /etc/roost/roost.toml       run the daemon in the foreground
      roost show peers                         sessions of the running daemon
      roost show routes [PREFIX]               learned and originated routes
      roost graceful-restart                   stop for a restart, peers keep our routes
      roost refresh PEER [--in|--out]          soft reset: ROUTE-REFRESH / re-send
      roost demo                               6 hosts in network namespaces (root)

    Configuration: docs/configuration.md. Operations: docs/operations.md.
    """


# --------------------------------------------------------------------------- run / check


@main.command(context_settings=CONTEXT)
@click.option("-c", "--config", "config_path", required=True, metavar="FILE",
              help="Configuration file (TOML).")
@click.option("--flush-on-exit", is_flag=True,
              help="Remove the routes roost installed in the kernel when it exits "
                   "(default: keep them, as BIRD's `persist` does).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="Log verbosity (logs go to stderr).")
def run(config_path: str, flush_on_exit: bool, log_level: str) -> None:
    """Run the daemon in the foreground.

    SIGTERM or SIGINT shuts down cleanly: every peer gets a Cease NOTIFICATION
    (administrative shutdown); kernel routes stay unless --flush-on-exit. SIGHUP reloads
    the configuration (peers and originated prefixes are added and removed without
    resetting unaffected sessions); an invalid file is rejected and the old one kept.
    """
    config = _load(config_path)
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from roost import daemon

    # pyroute2 logs whole netlink messages at DEBUG; roost's own debug lines only. After
    # the import above: importing pyroute2 (via kernel) sets its logger's level to NOTSET.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    try:
        code = daemon.main(config, flush_on_exit=flush_on_exit)
    except daemon.StartupError as exc:
        _fail(str(exc))
    sys.exit(code)


@main.command(context_settings=CONTEXT)
@click.option("-c", "--config", "config_path", required=True, metavar="FILE",
              help="Configuration file (TOML).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when the file is valid.")
def check(config_path: str, quiet: bool) -> None:
    """Validate a configuration file without applying it.

    Prints `OK` and a summary, or one `file:line: key: problem` line per error and exits 1.
    """
    config = _load(config_path)
    if not quiet:
        click.echo(f"OK {config_path}: {config.summary()}")
        for peer in config.peers:
            flags = [f for f, on in (("passive", peer.passive), ("rr-client", peer.rr_client),
                                     ("reflector", peer.route_reflector)) if on]
            click.echo(f"  {peer.name:<24} {peer.address!s:<18} AS{peer.asn:<11} "
                       f"{'iBGP' if peer.is_ibgp(config.router.asn) else 'eBGP'}"
                       + (f"  {' '.join(flags)}" if flags else ""))


# --------------------------------------------------------------------------- show


def _socket_option(f: Any) -> Any:
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(f)
    f = click.option("-c", "--config", "config_path", metavar="FILE",
                     help="Take the socket path from this configuration file.")(f)
    f = click.option("-s", "--socket", "socket_path", metavar="PATH", envvar="ROOST_SOCKET",
                     help=f"Control socket of the daemon [env ROOST_SOCKET; default "
                          f"{DEFAULT_SOCKET}].")(f)
    return f


def _ask(socket_path: str | None, config_path: str | None, cmd: str, **args: Any) -> Any:
    path = socket_path
    if path is None and config_path is not None:
        path = _load(config_path).control.socket
    try:
        return control.request(path or DEFAULT_SOCKET, cmd, **args)
    except control.ControlError as exc:
        _fail(str(exc))


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


@main.command("graceful-restart", context_settings=CONTEXT)
@_socket_option
@click.option("--timeout", default=15.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the daemon to exit.")
def graceful_restart(socket_path: str | None, config_path: str | None, as_json: bool,
                     timeout: float) -> None:
    """Stop the daemon for a restart or an upgrade, keeping every route.

    Like BIRD's `birdc graceful restart`: the daemon closes every session WITHOUT a
    NOTIFICATION, so that graceful restart helpers (roost, BIRD, FRR, GoBGP) keep its
    routes for its restart time, leaves its routes in the kernel and exits 0. Start it
    again within the restart time (`[router] graceful_restart`, default 120 s): it adopts
    its kernel routes, tells its peers it restarted (RFC 4724 Restart State bit) and
    resynchronises. Returns once the daemon has exited.
    """
    result = _ask(socket_path, config_path, "graceful-restart")
    path = socket_path or (_load(config_path).control.socket if config_path else None) \
        or DEFAULT_SOCKET
    pid = int(result.get("pid", 0)) if isinstance(result, dict) else 0
    deadline = time.monotonic() + timeout
    while _pid_running(pid) or control.socket_alive(path):
        if time.monotonic() > deadline:
            _fail(f"the daemon (pid {pid}) has not exited after {timeout:g} s")
        time.sleep(0.05)
    if as_json:
        _print_json({**result, "exited": True})
    else:
        click.echo(f"roost (pid {pid}) stopped for a graceful restart: sessions closed "
                   f"without NOTIFICATION, {result.get('kernel_routes', 0)} kernel route(s) "
                   f"kept; start it again within its restart time")


def _pid_running(pid: int) -> bool:
    """`pid` exists and is not a zombie (Linux /proc)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@main.command("refresh", context_settings=CONTEXT)
@click.argument("peer")
@click.option("--in", "direction", flag_value="in", default=True,
              help="Ask PEER to send its routes again: a ROUTE-REFRESH (soft reset in; "
                   "the default).")
@click.option("--out", "direction", flag_value="out",
              help="Send our routes to PEER again (soft reset out).")
@click.option("--family", metavar="FAMILY",
              help="Only this family (ipv4-unicast, ipv6-unicast); default: every "
                   "negotiated family.")
@_socket_option
def refresh(peer: str, direction: str, family: str | None, socket_path: str | None,
            config_path: str | None, as_json: bool) -> None:
    """Soft reset of one session (PEER = address or name), without dropping it.

    --in sends a ROUTE-REFRESH (RFC 2918; the peer must have negotiated route refresh),
    --out re-sends our whole Adj-RIB-Out for the family.
    """
    args: dict[str, Any] = {"peer": peer, "direction": direction}
    if family:
        args["family"] = family
    result = _ask(socket_path, config_path, "refresh", **args)
    if as_json:
        _print_json(result)
    else:
        click.echo(f"{result['peer']}: refresh {result['direction']} "
                   f"({', '.join(result['families'])})")


@main.group(context_settings=CONTEXT)
def show() -> None:
    """Query a running daemon over its control socket."""


@show.command("status", context_settings=CONTEXT)
@_socket_option
def show_status(socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Router id, AS, uptime, counts."""
    result = _ask(socket_path, config_path, "show status")
    if as_json:
        _print_json(result)
        return
    for key, value in result.items():
        click.echo(f"{key.replace('_', ' ') + ':':<22} {_fmt(value)}")


@show.command("peers", context_settings=CONTEXT)
@_socket_option
def show_peers(socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Sessions: state, uptime, prefixes received/accepted/advertised, last error."""
    peers = _ask(socket_path, config_path, "show peers")
    if as_json:
        _print_json(peers)
        return
    rows = [
        [
            p["name"],
            p["address"],
            str(p["asn"]),
            p["state"],
            _since(p.get("since")),
            f"{p.get('received', 0)}/{p.get('accepted', 0)}/{p.get('advertised', 0)}",
            p.get("info", ""),
        ]
        for p in peers
    ]
    click.echo(_table(["Name", "Address", "AS", "State", "Since", "Rcv/Acc/Adv", "Info"], rows))


@show.command("routes", context_settings=CONTEXT)
@click.argument("prefix", required=False)
@_socket_option
def show_routes(
    prefix: str | None, socket_path: str | None, config_path: str | None, as_json: bool
) -> None:
    """Routes in the Loc-RIB (all paths; `*` best, `=` multipath), or those of PREFIX.
    A path kept by graceful restart while its peer restarts is marked `(stale)`."""
    args = {"prefix": prefix} if prefix else {}
    routes = _ask(socket_path, config_path, "show routes", **args)
    if as_json:
        _print_json(routes)
        return
    rows = []
    for route in routes:
        first = True
        for path in route["paths"]:
            mark = "*" if path.get("best") else ("=" if path.get("multipath") else " ")
            rows.append([
                mark + " " + (route["prefix"] if first else ""),
                path.get("next_hop") or "-",
                (path.get("from") or "-") + (" (stale)" if path.get("stale") else ""),
                path.get("as_path") or "-",
                _fmt(path.get("local_pref")),
                _fmt(path.get("med")),
                str(path.get("origin", "")),
                _kernel_text(route.get("kernel")) if first else "",
            ])
            first = False
    click.echo(_table(
        ["  Prefix", "Next hop", "From", "AS path", "LocPref", "MED", "Origin", "Kernel"], rows
    ))


def _kernel_text(kernel: dict[str, Any] | None) -> str:
    if kernel is None:
        return "-"
    if kernel.get("blackhole"):
        return "blackhole"
    return ", ".join(
        f"via {nh['gateway']}" + (f" dev {nh['dev']}" if nh.get("dev") else "")
        + (" onlink" if nh.get("onlink") else "")
        for nh in kernel.get("nexthops", [])
    )


@show.command("route-reasons", context_settings=CONTEXT)
@click.argument("prefix")
@_socket_option
def show_route_reasons(
    prefix: str, socket_path: str | None, config_path: str | None, as_json: bool
) -> None:
    """Why the best path for PREFIX won (and why each other path lost)."""
    result = _ask(socket_path, config_path, "show route-reasons", prefix=prefix)
    if as_json:
        _print_json(result)
        return
    prefix_text = result.get("prefix", prefix)
    if result.get("best") is None:
        click.echo(f"{prefix_text}: no usable route")
    else:
        click.echo(f"{prefix_text}: best {result['best']} ({result.get('reason')})")
    for loser in result.get("losers", []):
        click.echo(f"  {loser.get('text') or loser['path'] + ': ' + loser['reason']}")
    for refused in result.get("rejected", []):
        pid = f" id {refused['path_id']}" if refused.get("path_id") else ""
        click.echo(f"  from {refused['peer']}{pid}: refused: {refused['reason']}")


# --------------------------------------------------------------------------- demo


@main.command(context_settings=CONTEXT)
@click.option("-n", "--nodes", default=6, show_default=True, type=click.IntRange(2, 20),
              help="Number of hosts.")
@click.option("--timeout", default=30.0, show_default=True, type=float,
              help="Seconds to wait for convergence.")
def demo(nodes: int, timeout: float) -> None:
    """Build network namespaces for N hosts on one bridge, run roost on each, print what
    every host learned, and clean up (also on Ctrl-C). Needs root."""
    if os.geteuid() != 0:
        _fail("the demo creates network namespaces and must run as root (try: sudo roost demo)")
    from roost import demo as demo_mod

    try:
        sys.exit(demo_mod.run_demo(nodes, timeout=timeout))
    except demo_mod.DemoError as exc:
        _fail(str(exc))


# --------------------------------------------------------------------------- formatting


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _since(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    seconds = max(0, int(time.time() - timestamp))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d{hours % 24:02d}h"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


if __name__ == "__main__":
    main()
