"""TCP MD5 passwords: `password_file`, and the secret never showing in logs, `show`
output, reprs, exceptions or configuration error messages."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bgp.aio.peer import BgpPeer, TransportOptions
from bgp.aio.sockopts import SocketOptions
from roost import config as cfg
from roost.daemon import Daemon
from tests.unit.aio._util import Recorder, config, wait_until
from tests.unit.test_max_prefix import _free_port

REPO = Path(__file__).resolve().parents[2]
SECRET = "Zebra-Quartz-7731"  # unique enough that a hit is a leak

ROUTER = """\
[router]
asn = 65000
id = "10.0.0.1"
"""


def _key_file(tmp_path: Path, text: str, mode: int = 0o600, name: str = "peer.key") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def _peer(extra: str, address: str = "10.0.0.2") -> str:
    return f'[[peer]]\naddress = "{address}"\nasn = 65001\n{extra}\n'


# ----------------------------------------------------------------------- password_file


def test_password_file_is_read_and_the_newline_stripped(tmp_path: Path) -> None:
    key = _key_file(tmp_path, SECRET + "\n")
    c = cfg.loads(ROUTER + _peer(f'password_file = "{key}"'), str(tmp_path / "roost.toml"))
    (p,) = c.peers
    assert p.password == SECRET
    assert p.password_file == str(key)


def test_relative_password_file_is_next_to_the_config(tmp_path: Path) -> None:
    _key_file(tmp_path, SECRET + "\r\n", name="rel.key")
    conf = tmp_path / "roost.toml"
    conf.write_text(ROUTER + _peer('password_file = "rel.key"'))
    (p,) = cfg.load(conf).peers
    assert p.password == SECRET


def test_password_file_for_mesh_and_dynamic_ranges(tmp_path: Path) -> None:
    key = _key_file(tmp_path, SECRET)
    mesh = cfg.loads(ROUTER + f'[mesh]\nnodes = ["10.0.0.1", "10.0.0.5"]\n'
                     f'password_file = "{key}"\n')
    assert [p.password for p in mesh.peers] == [SECRET]
    dyn = cfg.loads(ROUTER + f'[reflector]\n[[reflector.dynamic]]\nrange = "10.9.0.0/24"\n'
                    f'password_file = "{key}"\n')
    assert dyn.reflector is not None
    assert dyn.reflector.dynamic[0].template.password == SECRET


@pytest.mark.parametrize(("content", "mode", "message"), [
    (None, 0o600, "cannot read {path}: No such file or directory"),
    ("", 0o600, "{path} is empty"),
    ("\n", 0o600, "{path} is empty"),
    ("x" * 81, 0o600, "{path} holds 81 bytes; TCP MD5 keys are 1..80 bytes (Linux "
                      "TCP_MD5SIG_MAXKEYLEN)"),
])
def test_password_file_errors_name_the_config_line_and_the_file(
        tmp_path: Path, content: str | None, mode: int, message: str) -> None:
    path = tmp_path / "peer.key"
    if content is not None:
        _key_file(tmp_path, content, mode)
    conf = tmp_path / "roost.toml"
    conf.write_text(ROUTER + _peer(f'password_file = "{path}"'))
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(conf)
    (issue,) = info.value.issues
    assert str(issue) == f"{conf}:7: peer[0].password_file: {message.format(path=path)}"


def test_unreadable_password_file_as_nobody(request: pytest.FixtureRequest) -> None:
    """The "cannot read" case as a user that really cannot read the file (root reads
    any file)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the nobody user (setpriv)")
    # pytest's tmp_path is under a 0700 directory: nobody could not even reach the config.
    shared = Path(tempfile.mkdtemp(prefix="roost-secrets-", dir="/tmp"))
    shared.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    key = _key_file(shared, SECRET, 0o600)
    conf = shared / "roost.toml"
    conf.write_text(ROUTER + _peer(f'password_file = "{key}"'))
    conf.chmod(0o644)
    code = ("import sys; from roost import config as c\n"
            "try:\n c.load(sys.argv[1])\nexcept c.ConfigError as e:\n print(e)\n")
    cp = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                         sys.executable, "-c", code, str(conf)],
                        capture_output=True, text=True, timeout=30, cwd=REPO,
                        env=dict(os.environ, PYTHONPATH=str(REPO)))
    if "Permission denied" in cp.stderr and "roost" not in cp.stdout:
        pytest.skip(f"nobody cannot run the interpreter here: {cp.stderr.strip()[:200]}")
    assert cp.stdout.strip() == (f"{conf}:7: peer[0].password_file: cannot read {key}: "
                                 f"Permission denied"), cp.stderr


def test_password_and_password_file_are_exclusive(tmp_path: Path) -> None:
    key = _key_file(tmp_path, SECRET)
    with pytest.raises(cfg.ConfigError, match="set only one of password and password_file"):
        cfg.loads(ROUTER + _peer(f'password = "{SECRET}"\npassword_file = "{key}"'))


def test_group_readable_password_file_warns(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="roost")
    key = _key_file(tmp_path, SECRET, 0o640)
    cfg.loads(ROUTER + _peer(f'password_file = "{key}"'), "roost.toml")
    (record,) = [r for r in caplog.records if "password file" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert f"password file {key} is readable by group or others (mode 0640)" in record.getMessage()
    caplog.clear()
    key.chmod(0o600)
    cfg.loads(ROUTER + _peer(f'password_file = "{key}"'), "roost.toml")
    assert not [r for r in caplog.records if "password file" in r.getMessage()]


# ----------------------------------------------------------------------- no leaks


def test_reprs_do_not_show_the_password(tmp_path: Path) -> None:
    c = cfg.loads(ROUTER + _peer(f'password = "{SECRET}"')
                  + f'[reflector]\n[[reflector.dynamic]]\nrange = "10.9.0.0/24"\n'
                    f'password = "{SECRET}"\n')
    assert c.peers[0].password == SECRET  # it is there...
    for text in (repr(c), str(c), repr(c.peers), repr(c.reflector)):
        assert SECRET not in text  # ...but not shown
    assert "password_file=None" in repr(c.peers[0])
    opts = TransportOptions("10.0.0.2", password=SECRET)
    for text in (repr(opts), repr(opts.socket_options), repr(SocketOptions(password=SECRET))):
        assert SECRET not in text


@pytest.mark.parametrize("bad", [
    f'password = "{SECRET * 6}"',     # too long
    "password = 77310042",            # not a string
    f'password = "{SECRET}"\nhold_time = 1',  # another error in the same table
    f'password = "{SECRET}"\npasword = "{SECRET}"',  # a misspelt key next to it
])
def test_config_errors_do_not_quote_the_password(bad: str) -> None:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.loads(ROUTER + _peer(bad), "roost.toml")
    text = str(info.value) + repr(info.value) + "".join(map(repr, info.value.issues))
    assert SECRET not in text and "77310042" not in text
    assert "password" in text or "hold_time" in text


async def test_daemon_outputs_and_logs_do_not_show_the_password(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An MD5-protected session on loopback, established and then reset by a reload that
    changes the key: the key is in no log line (DEBUG included), in no `show` output and
    in no reload answer."""
    caplog.set_level(logging.DEBUG)
    port = _free_port()
    key = _key_file(tmp_path, SECRET + "\n")
    conf = tmp_path / "roost.toml"

    def write(extra: str) -> None:
        conf.write_text(f"""\
[router]
asn = 65000
id = "10.0.0.1"
listen = ["127.0.0.1"]
port = {port}

[kernel]
enabled = false

[control]
socket = "{tmp_path / 'ctl'}"

[[peer]]
address = "127.0.0.2"
asn = 65000
passive = true
{extra}
""")

    write(f'password_file = "{key}"')
    daemon = Daemon(cfg.load(conf), install_signals=False)
    await daemon.start()
    rec = Recorder()
    peer = BgpPeer(config(65000, ipaddress.IPv4Address("10.0.0.2"), 65000),
                   TransportOptions("127.0.0.1", port, local_address="127.0.0.2",
                                    password=SECRET), rec)
    outputs: list[str] = []
    try:
        await peer.start()
        await wait_until(lambda: peer.established, 10, "Established with MD5")
        outputs += [json.dumps(daemon.show_peers()), json.dumps(daemon.status()),
                    repr(daemon.config), repr(daemon.peers)]
        write(f'password = "{SECRET}-2"')  # the key changes: the peer is reset
        outputs.append(json.dumps(await daemon.reload()))
        await wait_until(lambda: rec.downs, 10, "reset by the reload")
        outputs += [json.dumps(daemon.show_peers()), repr(daemon.config)]
    finally:
        await peer.stop(flush_timeout=0.2)
        await daemon.shutdown()
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "password" in logged  # the reset says which field changed...
    assert SECRET not in logged  # ...never its value
    for text in outputs:
        assert SECRET not in text


def test_roost_check_does_not_show_the_password(tmp_path: Path) -> None:
    key = _key_file(tmp_path, SECRET)
    conf = tmp_path / "roost.toml"
    conf.write_text(ROUTER + _peer(f'password_file = "{key}"')
                    + _peer(f'password = "{SECRET}"', "10.0.0.3"))
    cp = subprocess.run([sys.executable, "-m", "roost", "check", "-c", str(conf)],
                        capture_output=True, text=True, timeout=30, cwd=REPO,
                        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("OK")
    assert SECRET not in cp.stdout + cp.stderr
