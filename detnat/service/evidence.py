"""Evidence files: one reverse answer, self-contained, that anyone can check offline.

An evidence file (JSON, ``format: detnat-evidence/4``) holds the query as given, the answer, per
realm searched its session drain and every plan version the answer was computed from (from the
first candidate to the first version after the window: full content, hashes, who published and
approved it), the audit entry of the lookup with its hashes, the code version that answered, and
under ``logs`` how the log lines the answer shows were read: the ``logs.ingest`` audit entries of
the ingests that read them (format, file, parse options) and, per log candidate and line, the
ingest that read it, and under ``directory`` how the account's lines were read: the
``directory.ingest`` audit entries of the ingests that made its rows (format, files, ``--tz``,
``--realm``, ``--interim``) and, per interval of ``account.held``, the ingest that made it.

The audit entry is the anchor: its ``content_sha256`` covers ``detail`` (the query, the answer and
the ``trace`` written at lookup time: ``now``, and per realm its drain and, per version, its id,
seq, ``record_sha256`` and approval) and its ``entry_sha256`` chains it into the audit log. Every
other value in the file is either compared, field by field and type by type, with what the audit
entry says, or recomputed from it:

- ``query``, ``answer``, ``code_version``, each realm's drain, each version's id, seq,
  ``record_sha256``, ``approved_by`` and ``approved_at`` must equal the audit entry's;
- each version's ``record_sha256`` is recomputed from its record (realm, seq, effective_from,
  content and previous hashes, publisher, reason, correction, what it supersedes), its
  ``content_sha256`` from its plan;
- every log line the answer shows is read again with its ingest's format and parse options
  (:func:`detnat.service.log_answers.check_lines`): the event it says (kind, instant, inside key,
  public address, ports, protocol) must be the one its candidate and line entry show, so an
  answer cannot name what its lines do not say; each ingest entry's own hashes must hold, and it
  must name the candidate's realm and the line's file;
- every source line of the account's intervals is read again with its ingest's format, zone and
  interim period (:func:`detnat.service.directory.check_lines`, the rules in
  :mod:`detnat.directory.reread`): the subscriber, account, times and end each interval shows
  must be what its lines say; each ``directory.ingest`` entry's own hashes must hold, and it must
  be of the row's realm and have read the line's file;
- the answer is recomputed from the embedded plans with the service's own rules
  (:func:`detnat.service.lookups.answer_reverse`) at the instant the lookup was made, and its log
  candidates re-derived from their lines (:func:`detnat.service.log_answers.rederive`).

A ``detnat-evidence/2`` file (made before ``logs``) is checked as before, but its log lines cannot
be read again: if it shows any, that is a problem (make the file again), never "valid". Likewise
a ``detnat-evidence/3`` or /2 file (made before ``directory``) whose account shows intervals.

:func:`verify_bytes` reads the file strictly (:mod:`detnat.strictjson`: duplicate keys refused) and
:func:`verify` refuses unknown, missing and mistyped keys, so one changed leaf, one added or
doubled key, fails it with a line naming the first field that differs.

What an offline check cannot prove: that the audit entry is the one in the store. Hashes are
computed with public rules, so a forger who rewrites the file consistently -- a new audit
entry with recomputed ``content_sha256`` and ``entry_sha256``, plan records with recomputed
hashes -- makes a file that verifies. Such a file is caught only against the database (the entry's
``entry_sha256``, the versions' ``record_sha256`` in their realm's chain: ``detnat audit verify``,
``GET /v1/answers/{id}``) or against an exported audit checkpoint at or after the entry.

One module at this size: building an evidence file and verifying it offline must agree field by
field, so both sides stay together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from detnat import strictjson
from detnat.engine import parse_public_address
from detnat.errors import DetnatError, NotFound
from detnat.logs.formats import ParseOptions
from detnat.planfile import plan_from_data
from detnat.service import audit, directory, log_answers, logs, lookups, plans
from detnat.service.timelines import RealmTimeline, Timelines, TimelineVersion, make_version
from detnat.service.times import format_instant, parse_instant
from detnat.store import repo
from detnat.store.models import AuditEntry, PlanVersion

FORMAT = "detnat-evidence/4"
# Checked, but without how their lines were read: /2 has neither the log lines' nor the directory
# lines' ingests, /3 no directory lines' ingests. A file that shows such lines is not valid.
PREVIOUS_FORMATS = ("detnat-evidence/3", "detnat-evidence/2")
OLD_FORMATS = ("detnat-evidence/1",)

_NONE = type(None)
Spec = dict[str, tuple[type, ...]]
_DOCUMENT_2: Spec = {
    "format": (str,),
    "code_version": (str,),
    "query": (dict,),
    "answer": (dict,),
    "realms": (dict,),
    "audit_entry": (dict,),
}
_DOCUMENT_3: Spec = {**_DOCUMENT_2, "logs": (dict,)}
_DOCUMENT: Spec = {**_DOCUMENT_3, "directory": (dict,)}
_SPECS = {FORMAT: _DOCUMENT, "detnat-evidence/3": _DOCUMENT_3, "detnat-evidence/2": _DOCUMENT_2}
# How the account's lines were read: the ingests' audit entries, and per held interval its ingest.
_DIRECTORY: Spec = {"ingests": (list,), "held": (list,)}
_DIRECTORY_RECORD: Spec = {"format": (str,), "tz": (str, _NONE), "files": (list,)}
# recorded since realms (migration 0007) and --interim: an ingest before read without them
_DIRECTORY_LATER: Spec = {"realm": (str, _NONE), "interim_seconds": (float, int, _NONE)}
# How the log lines were read: the ingests' audit entries, and per candidate and line its ingest.
_LOGS: Spec = {"ingests": (list,), "lines": (list,)}
_INGEST_DETAIL: Spec = {"record": (dict,)}
_INGEST_RECORD: Spec = {
    "ingest": (int,),
    "realm": (str,),
    "format": (str,),
    "file": (str,),
    "months": (dict,),
}
_INGEST_OPTIONS: Spec = {"year": (int, _NONE), "tz": (str, _NONE), "exporter": (str,)}
_AUDIT_ENTRY: Spec = {
    "seq": (int,),
    "at": (str,),
    "actor": (str,),
    "role": (str,),
    "token_id": (int, _NONE),
    "action": (str,),
    "case": (str, _NONE),
    "status": (str, _NONE),
    "request_id": (str,),
    "code_version": (str,),
    "detail": (dict,),
    "content_sha256": (str,),
    "prev_sha256": (str,),
    "entry_sha256": (str,),
}
_DETAIL: Spec = {"query": (dict,), "answer": (dict,), "trace": (dict,)}
_TRACE: Spec = {"now": (str,), "realms": (dict,)}
_REALM: Spec = {"session_drain_us": (int,), "versions": (list,)}
_TRACED_VERSION: Spec = {
    "id": (int,),
    "seq": (int,),
    "record_sha256": (str,),
    "approved_by": (str, _NONE),
    "approved_at": (str, _NONE),
}
_VERSION: Spec = {
    "id": (int,),
    "realm": (str,),
    "seq": (int,),
    "effective_from": (str,),
    "plan": (dict, _NONE),
    "content_sha256": (str, _NONE),
    "prev_sha256": (str, _NONE),
    "record_sha256": (str,),
    "published_at": (str,),
    "published_by": (str,),
    "reason": (str,),
    "correction": (bool,),
    "supersedes": (int, _NONE),
    "approved_by": (str, _NONE),
    "approved_at": (str, _NONE),
}


# -- making ----------------------------------------------------------------------------------------


def _version_record(
    session: Session, realm: str, version: PlanVersion, traced: dict[str, Any]
) -> dict[str, Any]:
    supersedes = session.get(PlanVersion, version.supersedes_id) if version.supersedes_id else None
    return {
        "id": version.id,
        "realm": realm,
        "seq": version.seq,
        "effective_from": format_instant(version.effective_from),
        "plan": version.plan,
        "content_sha256": version.content_sha256,
        "prev_sha256": version.prev_sha256,
        "record_sha256": version.record_sha256,
        "published_at": format_instant(version.published_at),
        "published_by": version.published_by,
        "reason": version.reason,
        "correction": version.correction,
        "supersedes": supersedes.seq if supersedes else None,
        # As the lookup recorded it (the audit entry vouches for it), not as read today.
        "approved_by": traced["approved_by"],
        "approved_at": traced["approved_at"],
    }


def lookup_entry(session: Session, answer_id: int) -> AuditEntry:
    entry = session.get(AuditEntry, answer_id)
    if entry is None or not entry.action.startswith("lookup."):
        raise NotFound(f"no answer {answer_id}", field="answer_id")
    return entry


def build(session: Session, answer_id: int) -> dict[str, Any]:
    """The evidence file of the reverse answer ``answer_id`` (its audit entry's seq)."""
    entry = lookup_entry(session, answer_id)
    if entry.action != "lookup.reverse":
        raise NotFound(
            f"answer {answer_id} is a {entry.action.removeprefix('lookup.')} lookup; evidence "
            "files are made for single reverse lookups",
            field="answer_id",
        )
    trace = entry.detail["trace"]
    if any("versions" not in excerpt for excerpt in trace["realms"].values()):
        raise NotFound(
            f"answer {answer_id} was recorded before lookups traced the approvals and drains a "
            f"{FORMAT} file must be checked against; no evidence file can be made for it",
            field="answer_id",
        )
    realms: dict[str, Any] = {}
    for name, excerpt in trace["realms"].items():
        rows = repo.versions_by_id(session, {v["id"] for v in excerpt["versions"]})
        realms[name] = {
            "session_drain_us": excerpt["session_drain_us"],
            "versions": [
                _version_record(session, name, rows[v["id"]], v) for v in excerpt["versions"]
            ],
        }
    return {
        "format": FORMAT,
        "code_version": entry.code_version,
        "query": entry.detail["query"],
        "answer": entry.detail["answer"],
        "realms": realms,
        "audit_entry": audit.entry_json(entry),
        "logs": _logs_part(session, entry.detail["answer"]),
        "directory": _directory_part(session, entry.detail["answer"]),
    }


def _directory_part(session: Session, answer: dict[str, Any]) -> dict[str, Any]:
    """How the account's source lines were read: the ``directory.ingest`` audit entries, and
    for each interval the account shows the ingest that made it (null: not known; verify then
    says its lines are not read)."""
    held = directory.ingests_of_held(session, answer)
    entries = (session.get(AuditEntry, seq) for seq in sorted({i for i in held if i is not None}))
    return {"ingests": [audit.entry_json(e) for e in entries if e is not None], "held": held}


def _logs_part(session: Session, answer: dict[str, Any]) -> dict[str, Any]:
    """How the answer's log lines were read: the ingests' audit entries, and for each candidate
    the ingest of each of its lines (null: not known; verify then says the line is not read)."""
    candidates = answer.get("log_candidates", [])
    keys = [
        (c["realm"], line["file"], line["at"], line["sha256"])
        for c in candidates
        for line in c["lines"]
    ]
    found = iter(logs.ingests_of_lines(session, keys))
    lines = [[next(found) for _ in c["lines"]] for c in candidates]
    ids = {i for row in lines for i in row if i is not None}
    return {
        "ingests": [audit.entry_json(e) for e in logs.ingest_entries(session, ids)],
        "lines": lines,
    }


# -- checking --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """The verdict on one evidence file: no problems means valid."""

    problems: list[str]
    recomputed: dict[str, Any] | None
    document: Any


def verify_bytes(data: bytes) -> Checked:
    """Read an evidence file strictly (UTF-8 JSON, no duplicate keys) and :func:`verify` it."""
    try:
        document = strictjson.loads(data.decode("utf-8"), field="evidence file")
    except UnicodeDecodeError:
        return Checked(["evidence file: not UTF-8"], None, None)
    except DetnatError as exc:
        return Checked([str(exc)], None, None)
    problems, recomputed = verify(document)
    return Checked(problems, recomputed, document)


def verify(document: Any) -> tuple[list[str], dict[str, Any] | None]:
    """Check an evidence file offline: (problems, the recomputed answer). No problems: valid.

    The first problem names the first field found to differ (see the module docstring).
    """
    problems: list[str] = []
    try:
        _check_document(document, problems)
        if problems:
            return problems, None
        readings = _line_readings(document, problems)
        if readings is None:
            return problems, None
        problems += log_answers.check_lines(document["answer"], readings)
        held = _held_readings(document, problems)
        if held is None:
            return problems, None
        return problems, _recompute(document, problems, held)
    except (KeyError, TypeError, ValueError, ArithmeticError, DetnatError) as exc:
        problems.append(f"malformed evidence file: {type(exc).__name__}: {exc}")
        return problems, None


def _check_document(document: Any, problems: list[str]) -> None:
    if not isinstance(document, dict):
        problems.append(f"not a {FORMAT} file: a JSON object was expected")
        return
    shown = document.get("format")
    if shown in OLD_FORMATS:
        problems.append(
            f"format: {shown} files do not bind approvals, drains and version ids to the audit "
            f"entry and are no longer accepted; make the evidence file again ({FORMAT})"
        )
        return
    if shown != FORMAT and shown not in PREVIOUS_FORMATS:
        problems.append(f"format: {_show(shown)} is not {FORMAT}")
        return
    if _shape(document, "", _SPECS[shown], problems, of=shown):
        return
    entry = document["audit_entry"]
    if _shape(entry, "audit_entry", _AUDIT_ENTRY, problems):
        return
    if not _hashed(entry, "audit_entry", problems):
        return
    # From here on the audit entry is taken as hashed; everything else is compared with it.
    if entry["action"] != "lookup.reverse":
        problems.append(f"audit_entry.action: {_show(entry['action'])} is not a reverse lookup")
        return
    detail = entry["detail"]
    if _required(detail, "audit_entry.detail", _DETAIL, problems):
        return
    trace = detail["trace"]
    if _required(trace, "audit_entry.detail.trace", _TRACE, problems):
        return
    _compare(document["code_version"], entry["code_version"], "code_version", problems)
    _compare(document["query"], detail["query"], "query", problems)
    _compare(document["answer"], detail["answer"], "answer", problems)
    _compare(document["answer"].get("status"), entry["status"], "answer.status", problems)
    _check_realms(document["realms"], trace["realms"], problems)


def _check_realms(realms: dict[str, Any], traced: dict[str, Any], problems: list[str]) -> None:
    for name in realms:
        if name not in traced:
            problems.append(f"realms.{name}: not a realm the audit entry's trace names")
    for name, excerpt in traced.items():
        where = f"realms.{name}"
        if name not in realms:
            problems.append(f"{where}: missing (the audit entry's trace names it)")
            continue
        part = realms[name]
        if _shape(part, where, _REALM, problems):
            continue
        if _required(excerpt, f"audit_entry.detail.trace.{where}", _REALM, problems):
            continue
        _compare(
            part["session_drain_us"],
            excerpt["session_drain_us"],
            f"{where}.session_drain_us",
            problems,
        )
        versions, listed = part["versions"], excerpt["versions"]
        if len(versions) != len(listed):
            problems.append(
                f"{where}.versions: {len(versions)} in the file, {len(listed)} in the audit "
                "entry's trace"
            )
            continue
        for n, (record, traced_version) in enumerate(zip(versions, listed, strict=True)):
            _check_version(record, traced_version, name, f"{where}.versions[{n}]", problems)


def _check_version(record: Any, traced: Any, realm: str, where: str, problems: list[str]) -> None:
    if _shape(record, where, _VERSION, problems):
        return
    if _required(traced, f"audit_entry.detail.trace.{where}", _TRACED_VERSION, problems):
        return
    for key in _TRACED_VERSION:
        _compare(record[key], traced[key], f"{where}.{key}", problems)
    _compare(record["realm"], realm, f"{where}.realm", problems)
    for key in ("effective_from", "published_at"):
        if format_instant(parse_instant(record[key])) != record[key]:
            problems.append(f"{where}.{key}: {_show(record[key])} is not as the store writes it")
    plan = record["plan"]
    expected = plans.content_hash(plan) if plan is not None else None
    if expected != record["content_sha256"]:
        problems.append(f"{where}.content_sha256: does not match the plan (plan or hash altered)")
    row = PlanVersion(
        seq=record["seq"],
        effective_from=parse_instant(record["effective_from"]),
        content_sha256=record["content_sha256"],
        prev_sha256=record["prev_sha256"],
        published_at=parse_instant(record["published_at"]),
        published_by=record["published_by"],
        reason=record["reason"],
        correction=record["correction"],
    )
    if plans.record_hash(row, record["realm"], record["supersedes"]) != record["record_sha256"]:
        problems.append(f"{where}.record_sha256: does not match the version's record")


def _line_readings(
    document: dict[str, Any], problems: list[str]
) -> list[list[log_answers.LineReading | None]] | None:
    """For each log candidate of the answer and each of its lines, the format and options to read
    it again with (None: it cannot be, and ``problems`` says why). None: ``logs`` is malformed."""
    candidates = document["answer"].get("log_candidates", [])
    unread: list[list[log_answers.LineReading | None]] = [
        [None] * len(c["lines"]) for c in candidates
    ]
    if "logs" not in document:  # a detnat-evidence/2 file
        if any(c["lines"] for c in candidates):
            problems.append(
                f"answer.log_candidates: a {document['format']} file does not say which format "
                "and parse options its log lines were ingested with, so they cannot be read "
                f"again to prove the answer follows from them; make the evidence file again "
                f"({FORMAT})"
            )
        return unread
    part = document["logs"]
    if _shape(part, "logs", _LOGS, problems):
        return None
    ingests = _ingests(part["ingests"], document["audit_entry"]["seq"], problems)
    if ingests is None:
        return None
    lines = part["lines"]
    if type(lines) is not list or len(lines) != len(candidates):
        problems.append(f"logs.lines: not one list per log candidate ({len(candidates)})")
        return None
    readings = unread
    for n, (c, ids) in enumerate(zip(candidates, lines, strict=True)):
        where = f"logs.lines[{n}]"
        if type(ids) is not list or len(ids) != len(c["lines"]):
            problems.append(f"{where}: not one ingest (or null) per line of its candidate")
            return None
        for m, (line, ingest_id) in enumerate(zip(c["lines"], ids, strict=True)):
            at = f"answer.log_candidates[{n}].lines[{m}]"
            if ingest_id is None:
                problems.append(
                    f"{at}: line {line['file']}:{line['line']} is not read again: which ingest "
                    "read it was not known when the evidence file was made (its event was no "
                    "longer stored, and no one ingest of its file and month was left)"
                )
                continue
            if type(ingest_id) is not int or ingest_id not in ingests:
                problems.append(f"{where}[{m}]: {_show(ingest_id)} is no ingest of logs.ingests")
                continue
            record, options = ingests[ingest_id]
            if record["realm"] != c["realm"] or record["file"] != line["file"]:
                problems.append(
                    f"{at}: ingest {ingest_id} read {_show(record['file'])} into realm "
                    f"{_show(record['realm'])}, not this line's file and realm"
                )
                continue
            months = frozenset(record["months"])
            if options is None:
                readings[n][m] = log_answers.LineReading(
                    record["format"], ParseOptions(), False, months
                )
            else:
                readings[n][m] = log_answers.LineReading(
                    record["format"],
                    ParseOptions(
                        year=options["year"], tz=options["tz"], exporter=options["exporter"]
                    ),
                    True,
                    months,
                )
    named = {i for ids in lines for i in ids}
    for ingest_id in ingests:
        if ingest_id not in named:
            problems.append(f"logs.ingests: ingest {ingest_id} read no line of the answer")
    return readings


def _ingests(
    entries: list[Any], before: int, problems: list[str]
) -> dict[int, tuple[dict[str, Any], dict[str, Any] | None]] | None:
    """The ``logs.ingest`` audit entries ``entries``, each checked like the lookup's own (its
    hashes, its shape, made before the lookup's entry ``before``): ingest id -> (record,
    options or None when the ingest recorded none). None: one is not such an entry."""
    found: dict[int, tuple[dict[str, Any], dict[str, Any] | None]] = {}
    for k, entry in enumerate(entries):
        where = f"logs.ingests[{k}]"
        if _shape(entry, where, _AUDIT_ENTRY, problems):
            return None
        if not _hashed(entry, where, problems):
            return None
        if entry["action"] != "logs.ingest" or entry["seq"] >= before:
            problems.append(f"{where}: not a logs.ingest audit entry made before the lookup's")
            return None
        detail = entry["detail"]
        if _required(detail, f"{where}.detail", _INGEST_DETAIL, problems):
            return None
        record = detail["record"]
        if _required(record, f"{where}.detail.record", _INGEST_RECORD, problems):
            return None
        options = detail.get("options")
        if options is not None and _shape(
            options, f"{where}.detail.options", _INGEST_OPTIONS, problems
        ):
            return None
        if record["ingest"] in found:
            problems.append(f"{where}: ingest {record['ingest']} twice")
            return None
        found[record["ingest"]] = (record, options)
    return found


def _held_readings(
    document: dict[str, Any], problems: list[str]
) -> list[directory.Reading | None] | None:
    """For each interval the answer's account shows, how to read its source lines again (None:
    they cannot be, and ``problems`` says why). None: ``directory`` is malformed."""
    held = directory.held_rows(document["answer"])
    unread: list[directory.Reading | None] = [None] * len(held)
    if "directory" not in document:  # a detnat-evidence/3 or /2 file
        if held:
            problems.append(
                f"answer.account: a {document['format']} file does not say which ingest read "
                "its directory lines (format, --tz, --interim), so they cannot be read again to "
                f"prove the account follows from them; make the evidence file again ({FORMAT})"
            )
        return unread
    part = document["directory"]
    if _shape(part, "directory", _DIRECTORY, problems):
        return None
    ingests = _directory_ingests(part["ingests"], document["audit_entry"]["seq"], problems)
    if ingests is None:
        return None
    ids = part["held"]
    if len(ids) != len(held):
        problems.append(
            f"directory.held: not one ingest (or null) per interval of answer.account.held "
            f"({len(held)})"
        )
        return None
    readings = unread
    for n, (h, ingest_id) in enumerate(zip(held, ids, strict=True)):
        at = f"answer.account.held[{n}]"
        if ingest_id is None:
            problems.append(
                f"{at}: its lines are not read again: which ingest read them was not known when "
                "the evidence file was made (shown without lines, or no row of them was stored)"
            )
            continue
        if type(ingest_id) is not int or ingest_id not in ingests:
            problems.append(
                f"directory.held[{n}]: {_show(ingest_id)} is no ingest of directory.ingests"
            )
            continue
        record = ingests[ingest_id]
        if record.get("realm") != h.get("realm"):
            problems.append(
                f"{at}: ingest {ingest_id} read its lines into realm {_show(record.get('realm'))}, "
                f"not the row's {_show(h.get('realm'))}"
            )
            continue
        names = {f.get("name") for f in record["files"] if isinstance(f, dict)}
        stray = [s["file"] for s in h.get("sources", []) if s["file"][:300] not in names]
        if stray:
            problems.append(f"{at}: ingest {ingest_id} read no file {_show(stray[0])}")
            continue
        interim = record.get("interim_seconds")
        readings[n] = directory.Reading(
            record["format"], record["tz"], None if interim is None else round(interim * 1e6)
        )
    for ingest_id in ingests:
        if ingest_id not in ids:
            problems.append(f"directory.ingests: ingest {ingest_id} read no line of the account")
    return readings


def _directory_ingests(
    entries: list[Any], before: int, problems: list[str]
) -> dict[int, dict[str, Any]] | None:
    """The ``directory.ingest`` audit entries ``entries``, each checked like the lookup's own
    (its hashes, its shape, made before the lookup's entry ``before``): seq -> record. None: one
    is not such an entry."""
    found: dict[int, dict[str, Any]] = {}
    for k, entry in enumerate(entries):
        where = f"directory.ingests[{k}]"
        if _shape(entry, where, _AUDIT_ENTRY, problems) or not _hashed(entry, where, problems):
            return None
        if entry["action"] != directory.ACTION or entry["seq"] >= before:
            problems.append(f"{where}: not a directory.ingest audit entry made before the lookup's")
            return None
        detail = entry["detail"]
        if _required(detail, f"{where}.detail", _INGEST_DETAIL, problems):
            return None
        record = detail["record"]
        if _required(record, f"{where}.detail.record", _DIRECTORY_RECORD, problems):
            return None
        later = {k: v for k, v in _DIRECTORY_LATER.items() if k in record}
        if _required(record, f"{where}.detail.record", later, problems):
            return None
        if entry["seq"] in found:
            problems.append(f"{where}: ingest {entry['seq']} twice")
            return None
        found[entry["seq"]] = record
    return found


def _hashed(entry: dict[str, Any], where: str, problems: list[str]) -> bool:
    """Whether an audit entry's content and chain link match its hashes (a problem if not)."""
    content = {k: entry[k] for k in audit.CONTENT_FIELDS}
    if audit.sha256_text(audit.canonical(content)) != entry["content_sha256"]:
        problems.append(f"{where}: content does not match its content_sha256")
        return False
    if (
        audit.chain_hash(entry["seq"], entry["prev_sha256"], entry["content_sha256"])
        != entry["entry_sha256"]
    ):
        problems.append(f"{where}: entry_sha256 does not match its chain link")
        return False
    return True


def _recompute(
    document: dict[str, Any], problems: list[str], held: list[directory.Reading | None]
) -> dict[str, Any]:
    """The answer recomputed from the embedded plans and the audit entry's query and trace."""
    detail = document["audit_entry"]["detail"]
    query, answer, trace = detail["query"], detail["answer"], detail["trace"]
    realms = []
    for n, name in enumerate(sorted(document["realms"])):
        part = document["realms"][name]
        versions = sorted(
            (_timeline_version(record) for record in part["versions"]),
            key=lambda v: v.effective_from,
        )
        drain = timedelta(microseconds=part["session_drain_us"])
        realms.append(RealmTimeline(n + 1, name, drain, tuple(versions)))
    recomputed = lookups.answer_reverse(
        Timelines(0, realms),
        parse_public_address(answer["ip"], field="ip"),
        lookups.check_port(answer["port"]),
        at=parse_instant(answer["time"]),
        tolerance=timedelta(seconds=answer["tolerance_seconds"]),
        realm=query.get("realm"),
        now=parse_instant(trace["now"]),
        mappers=plans.MapperCache(),
    )
    recomputed = log_answers.rederive(recomputed, answer, problems, now=parse_instant(trace["now"]))
    problems += directory.check_account(answer)  # the account: from the intervals it carries
    problems += directory.check_lines(answer, held)  # the intervals: from their lines
    skipped = ("pending_approval", *directory.ACCOUNT_KEYS)
    shown = {k: v for k, v in answer.items() if k not in skipped}
    if recomputed != shown:
        if not answer.get("candidates"):
            problems.append(
                "answer: no plan held the address: the evidence embeds no plan to recompute that "
                "from"
            )
        else:
            problems.append("answer: recomputing it from the embedded plans gives another answer")
    return dict(recomputed)


def _timeline_version(record: dict[str, Any]) -> TimelineVersion:
    plan = record["plan"]
    return make_version(
        id=record["id"],
        seq=record["seq"],
        effective_from=parse_instant(record["effective_from"]),
        plan=plan,
        content_sha256=record["content_sha256"],
        record_sha256=record["record_sha256"],
        correction=record["correction"],
        ranges=plans.plan_address_ranges(plan_from_data(plan)) if plan is not None else [],
    )


# -- strict comparison -----------------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _types(value: Any, allowed: tuple[type, ...]) -> bool:
    return type(value) in allowed  # exact: a bool is not an int, an int is not a float


def _required(value: Any, where: str, spec: Spec, problems: list[str]) -> bool:
    """Problems with the keys ``spec`` requires (others may follow: hashed parts evolve)."""
    if not isinstance(value, dict):
        problems.append(f"{where}: an object was expected, not {_show(value)}")
        return True
    for key, allowed in spec.items():
        if key not in value:
            problems.append(f"{where}.{key}: missing")
            return True
        if not _types(value[key], allowed):
            names = " or ".join("null" if t is _NONE else t.__name__ for t in allowed)
            problems.append(f"{where}.{key}: {_show(value[key])} is not {names}")
            return True
    return False


def _shape(value: Any, where: str, spec: Spec, problems: list[str], *, of: str = FORMAT) -> bool:
    """True when ``value`` is not an object with exactly ``spec``'s keys of ``spec``'s types
    (``of``: the format named when a key is not one of them)."""
    if _required(value, where or "evidence file", spec, problems):
        return True
    for key in value:
        if key not in spec:
            problems.append(f"{where + '.' if where else ''}{key}: not a field of {of}")
            return True
    return False


def _compare(shown: Any, hashed: Any, where: str, problems: list[str]) -> None:
    found = _difference(shown, hashed, where)
    if found is not None:
        problems.append(found)


def _difference(shown: Any, hashed: Any, where: str) -> str | None:
    """The first place where ``shown`` differs from ``hashed`` (types included), or None."""
    if type(shown) is not type(hashed):
        return f"{where}: {_show(shown)} in the file, {_show(hashed)} in the audit entry"
    if isinstance(hashed, dict):
        for key in hashed:
            if key not in shown:
                return f"{where}.{key}: missing (the audit entry has it)"
        for key in shown:
            if key not in hashed:
                return f"{where}.{key}: not in the audit entry"
        for key in hashed:
            found = _difference(shown[key], hashed[key], f"{where}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(hashed, list):
        if len(shown) != len(hashed):
            return f"{where}: {len(shown)} items in the file, {len(hashed)} in the audit entry"
        for n, (a, b) in enumerate(zip(shown, hashed, strict=True)):
            found = _difference(a, b, f"{where}[{n}]")
            if found is not None:
                return found
        return None
    if shown != hashed:
        return f"{where}: {_show(shown)} in the file, {_show(hashed)} in the audit entry"
    return None
