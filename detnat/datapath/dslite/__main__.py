"""``python -m detnat.datapath.dslite aftr|b4 ...``: run the user-space AFTR or B4 on a TUN device.

    python -m detnat.datapath.dslite aftr --plan plan.yaml --tun aftr0 --address 2001:db8:af::1
    python -m detnat.datapath.dslite b4 --tun b4tun --address 2001:db8:b4::1 --aftr 2001:db8:af::1

Prints ``ready`` once the TUN device exists; then see :mod:`detnat.datapath.dslite.tun` for the
commands it answers on stdin. Errors are one line on stderr and exit status 2 (bad input) or 5
(unavailable: no /dev/net/tun, not allowed to create the device).
"""

from __future__ import annotations

import argparse
import sys

from detnat.datapath.dslite.softwire import B4, Aftr
from detnat.datapath.dslite.tun import open_tun, serve
from detnat.engine.addresses import V6, parse_address
from detnat.errors import DetnatError, InvalidInput, Unavailable
from detnat.planfile import load_mapper


def _ipv6(text: str, field: str) -> int:
    family, value = parse_address(text, field=field)
    if family != V6:
        raise InvalidInput(f"{text!r} is not an IPv6 address", field=field)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detnat.datapath.dslite")
    sub = parser.add_subparsers(dest="role", required=True)
    aftr = sub.add_parser("aftr", help="the AFTR: NAT keyed by B4, ports from the plan")
    aftr.add_argument("--plan", required=True, help="plan file (block or map, IPv6 subscribers)")
    aftr.add_argument("--address", required=True, help="the AFTR's IPv6 softwire address")
    aftr.add_argument("--ipv4-mtu", type=int, default=1500)
    b4 = sub.add_parser("b4", help="the B4: IPv4 from hosts into the softwire and back")
    b4.add_argument("--address", required=True, help="the B4's IPv6 address")
    b4.add_argument("--aftr", required=True, help="the AFTR's IPv6 softwire address")
    for role in (aftr, b4):
        role.add_argument("--tun", required=True, help="TUN device to create or attach to")
        role.add_argument("--ipv6-mtu", type=int, default=1500)
    args = parser.parse_args(argv)
    try:
        function: Aftr | B4
        if args.role == "aftr":
            function = Aftr(
                load_mapper(args.plan),
                address=_ipv6(args.address, "--address"),
                ipv4_mtu=args.ipv4_mtu,
                ipv6_mtu=args.ipv6_mtu,
            )
        else:
            function = B4(
                address=_ipv6(args.address, "--address"),
                aftr=_ipv6(args.aftr, "--aftr"),
                ipv6_mtu=args.ipv6_mtu,
            )
        fd, _ = open_tun(args.tun)
    except DetnatError as exc:
        print(f"detnat: error: {exc}", file=sys.stderr)
        return 5 if isinstance(exc, Unavailable) else 2
    print("ready", flush=True)
    expire = function.expire if isinstance(function, Aftr) else (lambda now: 0)
    serve(fd, function, expire=expire, commands=sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
