"""Coverage-guided fuzzing of the codec and a live session with atheris (optional).

    pip install atheris                  # a prebuilt wheel for CPython 3.11 on x86-64
    python -m bench.atheris_fuzz --write-corpus CORPUS     # seeds: the valid base messages
    python -m bench.atheris_fuzz -atheris_runs=1000000 -max_len=4200 CORPUS

libFuzzer mutates the octets after the marker (the first one picks the profile and the
stage); every input goes through the decoder under several contexts and through a live
`Session` (`bench/fuzzgen.py`), and must satisfy the generic RFC rules of
`fuzzgen.check_outcome`. Any other exception, or a broken rule (raised as AssertionError),
is a crash that libFuzzer reports with the input that caused it.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped,unused-ignore]

with atheris.instrument_imports():
    from bench import fuzzgen as fg
    from bgp.session import Session  # noqa: F401 - instrument the session module too
    from bgp.wire import attrcodec, framing, messages, prefix  # noqa: F401

_RIGS = [fg.SessionRig(p) for p in fg.profiles()]


def one_input(data: bytes) -> None:
    if not data:
        return
    profile = data[0] & 1
    stage = fg.OPEN_SENT if data[0] & 2 else fg.ESTABLISHED
    case = fg.Case(0, "atheris", "atheris", profile, stage, fg.MARKER + data[1:], fg.ANY)
    max_len = fg.max_len_of(case)
    fg.decode_only(case.wire, max_len)
    out, _ = fg.run_case(_RIGS[profile], case)
    problem = fg.check_outcome(case, out, max_len)
    if problem is not None:
        raise AssertionError(f"{problem} ({out.label()})")


def write_corpus(directory: str) -> None:
    """One file per valid base message of `fuzzgen.make_pool` (profile/stage octet first)."""
    from pathlib import Path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    pool = fg.make_pool(1, 40)
    n = 0
    for profile, bases in enumerate(pool.by_profile):
        for kind, items in bases.items():
            for base in items:
                stage = 2 if kind == "open" else 0
                (out / f"seed-{n:05d}").write_bytes(bytes((profile | stage,)) + base.wire[16:])
                n += 1
    print(f"{n} seed inputs in {out}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write-corpus":
        write_corpus(sys.argv[2])
        return
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
