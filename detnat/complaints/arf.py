"""ARF: RFC 5965 feedback reports (``multipart/report; report-type=feedback-report``).

The ``message/feedback-report`` part is a block of header fields: ``Source-IP`` (the address the
reported mail came from), ``Source-Port`` (RFC 6692: its source port, which is what a shared
address needs), ``Arrival-Date`` (RFC 5322 date with offset), ``Feedback-Type`` (the category).
A report without ``Arrival-Date`` is unreadable: the mail's own ``Date`` says when the report was
written, not when the reported mail arrived. Mails are read with the standard library's ``email``.

>>> import email
>>> mail = email.message_from_string(
...     'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\\n\\n'
...     '--b\\nContent-Type: message/feedback-report\\n\\nFeedback-Type: abuse\\n'
...     'Source-IP: 192.0.2.1\\nSource-Port: 47123\\n'
...     'Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\\n\\n--b--\\n')
>>> c = from_message(mail, Ref("one.eml"))
>>> c.ip, c.port, c.port_kind, c.zone
('192.0.2.1', 47123, 'source', 'EDT')
"""

from __future__ import annotations

from email.message import Message
from email.parser import HeaderParser

from detnat.complaints.records import (
    SOURCE,
    BadTime,
    Complaint,
    Record,
    Ref,
    Unreadable,
    mail_instant,
    port_of,
)

FORMAT = "arf"


def feedback_part(message: Message) -> Message | None:
    """The fields of the mail's ``message/feedback-report`` part, or None."""
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        if isinstance(payload, str):
            return HeaderParser().parsestr(payload)
    return None


def from_message(message: Message, ref: Ref) -> Record:
    fields = feedback_part(message)
    report_id = str(message.get("Message-ID") or "").strip()  # str: a Header for 8-bit bytes
    if fields is None:
        return Unreadable(ref, FORMAT, "no message/feedback-report part", report_id)
    ip = str(fields.get("Source-IP") or "").strip()
    if not ip:
        return Unreadable(ref, FORMAT, "feedback report without Source-IP", report_id)
    port = None
    text = fields.get("Source-Port")
    if text is not None:
        port = port_of(str(text))
        if port is None:
            return Unreadable(
                ref, FORMAT, f"Source-Port {str(text)[:20]!r} is not a port", report_id
            )
    arrival = fields.get("Arrival-Date") or fields.get("Received-Date")
    if arrival is None:
        return Unreadable(
            ref, FORMAT, "feedback report without Arrival-Date (the mail's Date is when the "
            "report was written, not when the reported mail arrived)", report_id,
        )  # fmt: skip
    try:
        at_us, zone = mail_instant(str(arrival))
    except BadTime as exc:
        return Unreadable(ref, FORMAT, f"Arrival-Date: {exc}", report_id)
    category = "feedback/" + str(fields.get("Feedback-Type") or "unknown").strip()
    return Complaint(
        ref, FORMAT, report_id or str(ref), ip, port, SOURCE if port is not None else None,
        at_us, str(arrival).strip(), zone, category,
    )  # fmt: skip
