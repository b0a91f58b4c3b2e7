"""`roost demo`: roost's showcase, three topologies with real daemons.

1. ``mesh``: N nodes on one L2 segment, a full iBGP mesh, a container per node.
2. ``reflector``: two racks (two ASes), each a pure route reflector with client nodes; the
   reflectors speak eBGP with ``next_hop = "keep"``.
3. ``cross-subnet``: two nodes on different subnets behind a router, routes through the
   IPIP device tunl0 (shown with the dry-run kernel sink when the kernel has no ipip).

As root with network namespaces every node is a namespace (``roost-demo-XXXX-*``); without
them every node is a daemon on a loopback address with the dry-run kernel sink. Modules:
``topology`` (the topologies and configurations, no I/O), ``lab`` (namespaces and
processes, and their clean-up), ``run`` (the steps, the output, the summary).
"""

from roost.demo.lab import DemoError
from roost.demo.run import StepResult, run_demo
from roost.demo.topology import TOPOLOGY_NAMES

__all__ = ["TOPOLOGY_NAMES", "DemoError", "StepResult", "run_demo"]
