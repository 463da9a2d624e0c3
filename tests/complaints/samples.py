"""Complaint notices for the tests: published samples (each names its source) and our own.

Published samples are quoted as the sources show them; where a source elides a field (``…``), our
value is filled in with a documentation address (RFC 5737) and said so.
"""

from __future__ import annotations

# XARF 4.0.0, xarf/xarf-spec samples/v4 (login attack), as quoted in formats.md section 2;
# the elided report_id and the rest of the fields are left out (not needed to ask).
XARF_4 = (
    b'{"xarf_version":"4.0.0","report_id":"3a1f6e0c-4b8e-4a55-9f0b-7c1d2e3f4a5b",'
    b'"timestamp":"2025-01-11T12:17:20Z","source_identifier":"198.51.100.77",'
    b'"source_port":45621,"category":"connection","type":"login_attack"}'
)

# XARF 4.0.0 copyright/p2p shape: the spec's sample has no source_port (formats.md section 2).
XARF_4_NO_PORT = (
    b'{"xarf_version":"4.0.0","report_id":"p2p-1","timestamp":"2025-01-11T12:17:20Z",'
    b'"source_identifier":"198.51.100.77","category":"content","type":"copyright"}'
)

# Abusix XARF, abusix/xarf samples/loginattack_sample.json, as quoted in formats.md section 2
# (ReporterInfo's elided fields: ours).
ABUSIX = (
    b'{"ReporterInfo":{"ReporterOrg":"Example Org","ReporterOrgEmail":"abuse@example.org"},'
    b'"Disclosure":true,"Report":{"ReportClass":"Activity","ReportType":"LoginAttack",'
    b'"Date":"2018-02-05T14:17:10Z","SourceIp":"192.0.2.55","SourcePort":54321}}'
)

# X-ARF 0.2 login-attack report part, fields as the pyxarf docs and SSHCure show them
# (formats.md section 2): Service ssh, Port 22, Date "Feb  3 2014 02:13:35 +0100".
XARF_02_YAML = (
    "Reported-From: reporter@example.org\n"
    "Category: abuse\n"
    "Report-Type: login-attack\n"
    "Service: ssh\n"
    "Version: 0.2\n"
    "User-Agent: SSHCure\n"
    "Date: Feb  3 2014 02:13:35 +0100\n"
    "Source-Type: ip-address\n"
    "Source: {ip}\n"
    "Port: 22\n"
    "Report-ID: 1391390015@example.org\n"
    "Attachment: text/plain\n"
    "Schema-URL: http://www.x-arf.org/schema/abuse_login-attack_0.1.2.json\n"
)


def xarf_02_mail(ip: str = "192.0.2.1") -> bytes:
    return (
        (
            "From: reporter@example.org\nSubject: abuse report about {ip}\nX-XARF: PLAIN\n"
            'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="xarf"\n\n'
            "--xarf\nContent-Type: text/plain; charset=utf-8\n\nLogin attacks from {ip}.\n"
            "--xarf\nContent-Type: text/plain; charset=utf-8; name=report.txt\n\n"
            + XARF_02_YAML
            + "--xarf--\n"
        )
        .format(ip=ip)
        .encode()
    )


def arf_mail(ip: str, port: int | None, arrival: str = "Thu, 8 Mar 2005 14:00:00 EDT") -> bytes:
    """An RFC 5965 report (the fields of its section 3; values ours), with RFC 6692 Source-Port."""
    port_line = f"Source-Port: {port}\n" if port is not None else ""
    return (
        (
            "From: fbl@example.com\nTo: abuse@example.net\nSubject: FW: Earn money\n"
            "Message-ID: <arf-{ip}-{port}@example.com>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=feedback-report; boundary="part1"\n\n'
            "--part1\nContent-Type: text/plain; charset=US-ASCII\n\nThis is an abuse report.\n"
            "--part1\nContent-Type: message/feedback-report\n\n"
            "Feedback-Type: abuse\nUser-Agent: SomeGenerator/1.0\nVersion: 1\n"
            "Original-Mail-From: <somespammer@example.net>\n"
            f"Arrival-Date: {arrival}\nSource-IP: {ip}\n{port_line}"
            "Reported-Domain: example.net\n\n"
            "--part1\nContent-Type: message/rfc822\n\nFrom: <somespammer@example.net>\n"
            "Subject: Earn money\n\nSpam.\n--part1--\n"
        )
        .format(ip=ip, port=port)
        .encode()
    )


def acns_xml(
    ip: str,
    port: int | None,
    stamp: str = "2016-10-16T17:27:46Z",
    *,
    namespace: str = "http://www.acns.net/ACNS",
    title: str = "Big Buck Bunny",
    case_id: str = "A1B2C3",
) -> str:
    """An ACNS 1.2 notice: the Source element as quoted in formats.md section 2 (PHP parser,
    notice: TimeStamp 2016-10-16T17:27:46Z, Port 33273, Type BitTorrent); the rest ours."""
    port_el = f"<Port>{port}</Port>" if port is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Infringement xmlns="{namespace}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        f"<Case><ID>{case_id}</ID><Status>Open</Status></Case>\n"
        "<Complainant><Entity>Example Studios</Entity></Complainant>\n"
        "<Service_Provider><Entity>Example ISP</Entity></Service_Provider>\n"
        f"<Source><TimeStamp>{stamp}</TimeStamp><IP_Address>{ip}</IP_Address>{port_el}"
        '<Type>BitTorrent</Type><SubType BaseType="P2P" Protocol="BITTORRENT"/></Source>\n'
        f"<Content><Item><Title>{title}</Title><FileName>bunny.mkv</FileName></Item></Content>\n"
        "</Infringement>\n"
    )


def acns_mail(ip: str, port: int, stamp: str, text_stamp: str | None = None, **kw: str) -> bytes:
    said = f"Initial Infringement Timestamp: {text_stamp}\n" if text_stamp else ""
    return (
        "From: antipiracy@example.com\nSubject: Notice of claimed infringement\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        f"Dear Example ISP,\n{said}Please forward this notice.\n\n"
        + acns_xml(ip, port, stamp, **kw)
    ).encode()


# Shadowserver headers, as IntelMQ/AbuseIO configs show them (formats.md section 2).
SHADOW_SNMP = (
    '"timestamp","ip","protocol","port","hostname","sysdesc","sysname","asn","geo","region",'
    '"city","version"\n'
)
SHADOW_DRONE = (
    '"timestamp","ip","asn","geo","url","type","http_agent","tor","src_port","dst_ip",'
    '"dst_asn","dst_geo"\n'
)


def mbox(*messages: bytes) -> bytes:
    return b"".join(
        b"From complaints@example.net Mon Mar 16 10:00:00 2026\n" + m.rstrip(b"\n") + b"\n\n"
        for m in messages
    )
