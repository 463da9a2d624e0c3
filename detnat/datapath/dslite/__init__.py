"""A DS-Lite AFTR and B4 in user space (RFC 6333), allocating ports from deterministic plans.

- :mod:`.packets`: IPv4/IPv6 headers, checksums, fragmentation, ICMP errors (pure);
- :mod:`.reassembly`: fragment reassembly with timeouts (pure);
- :mod:`.nat`: the binding table keyed by B4, ports from the plan, RFC timers (pure);
- :mod:`.softwire`: the AFTR and B4 as packet functions (pure: packets in, packets out);
- :mod:`.tun`: running either on a Linux TUN device; ``python -m detnat.datapath.dslite``.
"""
