"""roost: the daemon, its configuration, control socket and command line.

This package sits on top of `bgp`, `reflector` and `kernel` and wires them together;
nothing below it imports it.
"""

from __future__ import annotations

__version__ = "0.1.0"
