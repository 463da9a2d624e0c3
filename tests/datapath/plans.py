"""Small plans the datapath tests share (written as plan files, the way operators write them)."""

from __future__ import annotations

from pathlib import Path

from detnat.engine import Mapper
from detnat.planfile import load_mapper

# 14 subscribers (10.0.0.1-10.0.0.14) on 4 addresses, 20 ports each. Ports 2010-2011 are excluded,
# so block 0 of every address is split: 2000-2009 and 2012-2021. 10.0.0.14 owns 198.51.100.7.
SPLIT_BLOCKS = """\
algorithm: block
inside:
  prefixes: ["10.0.0.0/28"]
  subscriber_prefix_length: 32
  exclude: ["10.0.0.0/32", "10.0.0.15/32"]
outside: {prefixes: ["192.0.2.0/30"]}
ports: {first: 2000, last: 2099, exclude: ["2010-2011"]}
block: {size: 20}
static:
  - {subscriber: "10.0.0.14", address: "198.51.100.7"}
"""

# VPP's own example: det44 add in 10.0.0.0/18 out 1.1.1.0/30.
VPP = """\
algorithm: block
inside: {prefixes: ["10.0.0.0/18"], subscriber_prefix_length: 32}
outside: {prefixes: ["1.1.1.0/30"]}
block: {ratio: 4096}
"""

# RFC 7599 Appendix A: 2001:db8::/40 -> 192.0.2.0/24, 16 EA bits, PSID offset 6.
MAP = """\
algorithm: map
map: {rule_ipv6_prefix: "2001:db8::/40", rule_ipv4_prefix: "192.0.2.0/24",
      ea_bits_length: 16, psid_offset: 6}
"""

# Two DS-Lite B4s (/128 each) sharing 192.0.2.1, 1000 ports each.
DSLITE = """\
algorithm: block
inside: {prefixes: ["2001:db8:b4::/126"], subscriber_prefix_length: 128}
outside: {prefixes: ["192.0.2.1/32"]}
ports: {first: 1024, last: 5023}
block: {size: 1000}
"""


def plan_file(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def mapper_of(directory: Path, name: str, text: str) -> Mapper:
    return load_mapper(plan_file(directory, name, text))
