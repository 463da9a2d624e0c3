"""Sample records for the directory tests: published layouts (source named) and made-up ones."""

from __future__ import annotations

# The layout of a FreeRADIUS ``detail`` record (un-indented timestamp line, tab-indented
# ``Attribute = value`` lines, a blank line) as FreeRADIUS' rlm_detail writes it
# (raddb/mods-available/detail; the record shape read by ipdr-cgnat-compliance
# scripts/radius_parser.py). The values are made up, in documentation ranges.
DETAIL = """\
Tue Jun 30 22:44:25 2026
\tAcct-Session-Id = "4D2BB8AC-00000098"
\tAcct-Status-Type = Start
\tAcct-Authentic = RADIUS
\tUser-Name = "alice@isp.example"
\tNAS-IP-Address = 192.0.2.10
\tCalling-Station-Id = "00-11-22-33-44-55"
\tDelegated-IPv6-Prefix = 2001:db8:104d:c900::/56
\tFramed-IPv6-Address = 2001:db8:ffff::10
\tEvent-Timestamp = "Jun 30 2026 22:44:25 CEST"
\tAcct-Delay-Time = 0
\tTimestamp = 1782852265

Tue Jun 30 23:44:30 2026
\tAcct-Session-Id = "4D2BB8AC-00000098"
\tAcct-Status-Type = Interim-Update
\tUser-Name = "alice@isp.example"
\tNAS-IP-Address = 192.0.2.10
\tDelegated-IPv6-Prefix = 2001:db8:104d:c900::/56
\tAcct-Session-Time = 3605
\tTimestamp = 1782855870

Wed Jul  1 01:00:05 2026
\tAcct-Session-Id = "4D2BB8AC-00000098"
\tAcct-Status-Type = Stop
\tUser-Name = "alice@isp.example"
\tNAS-IP-Address = 192.0.2.10
\tDelegated-IPv6-Prefix = 2001:db8:104d:c900::/56
\tAcct-Session-Time = 8140
\tAcct-Delay-Time = 5
\tTimestamp = 1782860405

"""

# Kea memfile headers of each version (Kea's CSVLeaseFile6 column lists: src/lib/dhcpsrv/
# csv_lease_file6.cc and its unit tests; 3.0.3 adds hwtype, hwaddr_source, pool_id).
KEA_OLD = (
    "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,"
    "fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context"
)
KEA_2 = KEA_OLD + ",pool_id"
KEA_3 = KEA_OLD + ",hwtype,hwaddr_source,pool_id"

# A forensic log line of the Kea ARM (hooks-legal-log: "2018-01-06 01:02:03 PST Address:...");
# for a delegated prefix Kea writes ``Prefix:<addr>/<len>`` in the same place.
KEA_LEGAL_DOC = (
    "2018-01-06 01:02:03 PST Prefix:2001:db8:1::/56 has been assigned for 0 hrs 11 mins 53 secs "
    "to a device with DUID: 17:34:e2:ff:09:92:54 and hardware address: hwtype=1 "
    "08:00:2b:02:3f:4e (from Raw Socket) connected via relay at address: fe80::abcd for client "
    "on link address: 3001::1, hop count: 1, identified by remote-id: "
    "01:02:03:04:0a:0b:0c:0d:0e:0f and subscriber-id: 1a:2b:3c:4d:5e:6f"
)
