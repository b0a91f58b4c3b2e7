"""`roost`: run the daemon, check a configuration, query a running daemon, run the demo.

User errors (missing file, invalid configuration, daemon not running) print one clear
message on stderr and exit 1; command-line usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from roost import __version__, control, logs
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
      roost reload                             apply the configuration file again
      roost import-bird bird.cfg -o roost.toml convert a Calico BIRD configuration
      roost demo                               showcase: 3 topologies in namespaces

    Configuration: docs/configuration.md. Operations: docs/operations.md.
    """


# --------------------------------------------------------------------------- run / check


@main.command(context_settings=CONTEXT)
@click.option("-c", "--config", "config_path", required=True, metavar="FILE",
              help="Configuration file (TOML).")
@click.option("--flush-on-exit", is_flag=True,
              help="Remove the routes roost installed in the kernel when it exits "
                   "(default: keep them, as BIRD's `persist` does).")
@click.option("-R", "--recover", is_flag=True,
              help="Restart recovery (BIRD's -R): keep the kernel routes of the earlier "
                   "run, tell peers we restarted with forwarding state (RFC 4724 R and F "
                   "bits) and change the kernel only once every peer has sent End-of-RIB "
                   "(at most graceful_restart.wait seconds).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="Log verbosity (logs go to stderr).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Log lines as text or as one JSON object per line.")
def run(config_path: str, flush_on_exit: bool, recover: bool, log_level: str,
        log_format: str) -> None:
    """Run the daemon in the foreground.

    SIGTERM or SIGINT shuts down cleanly: every peer gets a Cease NOTIFICATION
    (administrative shutdown); kernel routes stay unless --flush-on-exit. SIGHUP reloads
    the configuration (peers and originated prefixes are added and removed without
    resetting unaffected sessions); an invalid file is rejected and the old one kept.
    To restart or upgrade without a gap: `roost graceful-restart`, then `roost run -R`.
    """
    config = _load(config_path)
    logs.configure(log_level, log_format, sys.stderr)
    from roost import daemon

    # pyroute2 logs whole netlink messages at DEBUG; roost's own debug lines only. After
    # the import above: importing pyroute2 (via kernel) sets its logger's level to NOTSET.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    try:
        code = daemon.main(config, flush_on_exit=flush_on_exit, recover=recover)
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


@main.command("reload", context_settings=CONTEXT)
@_socket_option
@click.option("--timeout", default=30.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the daemon's answer.")
def reload(socket_path: str | None, config_path: str | None, as_json: bool,
           timeout: float) -> None:
    """Make the daemon read its configuration file again (as SIGHUP does) and print what
    changed.

    Only the sessions whose settings changed are reset; peers added are started, peers
    removed get a Cease (peer de-configured); policy changes are applied without a reset.
    A file with errors is rejected as a whole: its `file:line: key: problem` lines are
    printed, nothing is applied and the exit status is 1. Settings that need a restart
    are listed as such.
    """
    path = socket_path
    if path is None and config_path is not None:
        path = _load(config_path).control.socket
    try:
        result = control.request(path or DEFAULT_SOCKET, "reload", timeout=timeout)
    except control.ControlError as exc:
        *issues, last = str(exc).splitlines() or [""]
        for line in issues:
            click.echo(line, err=True)
        _fail(last)
    if as_json:
        _print_json(result)
        return
    click.echo(_reload_text(result))


def _reload_text(result: dict[str, Any]) -> str:
    labels = (("peers_added", "peers added"), ("peers_removed", "peers removed"),
              ("peers_reset", "peers reset"), ("peers_refreshed", "policies re-applied"),
              ("prefixes_added", "prefixes added"), ("prefixes_removed", "prefixes withdrawn"),
              ("policies_changed", "policies changed"),
              ("peers_restarted", "peers restarted"))  # held down by max_prefixes
    lines = [f"reloaded {result.get('config', '')}".rstrip()]
    for key, label in labels:
        values = result.get(key) or []
        if values:
            lines.append(f"  {label + ':':<22} {', '.join(map(str, values))}")
    if len(lines) == 1:
        lines.append("  no change")
    restart = result.get("needs_restart") or []
    if restart:
        lines.append(f"  {'needs a restart:':<22} {', '.join(restart)} (not applied)")
    return "\n".join(lines)


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
    A path kept by graceful restart while its peer restarts is marked `(stale)`, one in
    the long-lived stale phase (RFC 9494, least preferred) `(llgr-stale)`."""
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
                (path.get("from") or "-") + _stale_text(path),
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


def _stale_text(path: dict[str, Any]) -> str:
    if path.get("llgr_stale"):
        return " (llgr-stale)"
    return " (stale)" if path.get("stale") else ""


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


# --------------------------------------------------------------------------- import-bird


@main.command("import-bird", context_settings=CONTEXT)
@click.argument("bird_cfg", metavar="BIRD_CFG", type=click.Path(dir_okay=False))
@click.option("-o", "--output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the TOML here (mode 0600: it may hold passwords); default stdout.")
def import_bird(bird_cfg: str, output: str | None) -> None:
    """Convert a Calico-generated BIRD configuration into roost's TOML.

    Reads BIRD_CFG and the files it includes (`bird_aggr.cfg`, `bird_ipam.cfg`, relative
    to it). What roost cannot express is reported on stderr as `file:line: warning: ...`
    and left out; a syntax error is `file:line: error: ...` and exit status 1. The result
    is checked as `roost check` would. See docs/migrating-from-bird.md.
    """
    import os

    from roost import import_bird as ib

    try:
        result = ib.convert(bird_cfg)
    except ib.BirdSyntaxError as exc:
        _fail(str(exc))
    for warning in result.warnings:
        click.echo(warning, err=True)
    try:
        cfg.loads(result.toml, output or "<import-bird output>")
    except cfg.ConfigError as exc:  # a conversion bug: say so rather than write it
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        _fail(f"{bird_cfg}: the converted configuration is not valid; nothing written")
    if output is None:
        click.echo(result.toml, nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # it may hold MD5 keys, also when it existed before
    with os.fdopen(fd, "w") as f:
        f.write(result.toml)
    click.echo(f"wrote {output} ({len(result.warnings)} warning"
               f"{'s' if len(result.warnings) != 1 else ''}); check it with "
               f"`roost check -c {output}`", err=True)


# --------------------------------------------------------------------------- demo


@main.command(context_settings=CONTEXT)
@click.option("--topology", type=click.Choice(["mesh", "reflector", "cross-subnet", "all"]),
              default="all", show_default=True, help="Which topology to run.")
@click.option("-n", "--nodes", default=4, show_default=True, type=click.IntRange(2, 20),
              help="Number of nodes of the full mesh.")
@click.option("--timeout", default=30.0, show_default=True, type=float,
              help="Seconds to wait for each topology to converge.")
@click.option("--keep-files", is_flag=True,
              help="Keep the generated configurations and the daemons' logs.")
@click.option("--no-netns", is_flag=True, hidden=True,
              help="Run on loopback addresses with the dry-run sink even as root.")
def demo(topology: str, nodes: int, timeout: float, keep_files: bool, no_netns: bool) -> None:
    """Run roost's showcase: a full mesh, a route-reflector rack pair and a cross-subnet
    pair with tunl0, each with real roost daemons in network namespaces; print every
    node's routes, ping container to container, clean up (also on Ctrl-C). Without root
    (or namespaces) the daemons run on loopback addresses and print the routes they
    would install."""
    from roost import demo as demo_mod

    names = demo_mod.TOPOLOGY_NAMES if topology == "all" else (topology,)
    try:
        sys.exit(demo_mod.run_demo(names, mesh_nodes=nodes, timeout=timeout,
                                   force_loopback=no_netns, keep_files=keep_files))
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
