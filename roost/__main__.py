"""`python -m roost` is the `roost` command."""

from __future__ import annotations

from roost.cli import main

main(prog_name="roost")
