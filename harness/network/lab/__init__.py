"""The network lab: clients in network namespaces behind a router with real netfilter (NAT
eviction, loss, black holes, middlebox resets), and an audit of the clients' TCP sockets."""

from harness.network.lab.model import Blackhole, Network
from harness.network.lab.netns import LAB_HOST, LabError, Monitor, TrialLab, available, sweep

__all__ = ["Blackhole", "Network", "LAB_HOST", "LabError", "Monitor", "TrialLab", "available", "sweep"]
