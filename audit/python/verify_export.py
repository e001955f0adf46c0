#!/usr/bin/env python3
"""Checks an export of the ledger's event log with nothing but Python's standard library.

The canonical encoding and the chain are implemented here again from ADR 0003 as it is
written, not from our Rust code, so a test that runs this on our exports tests the
specification. Usage:

    verify_export.py EXPORT [ANCHORS]

EXPORT is the NDJSON of GET /api/v1/audit/export. ANCHORS (optional) is a JSON page of
GET /api/v1/audit/anchors (or a list of its items): the hash at each anchored position
is compared with the export's. Signatures are not checked here: Ed25519 is not in the
standard library (the `audit` command checks them).

Prints one JSON object and exits 0 when everything holds, 1 otherwise.
"""

import calendar
import hashlib
import json
import re
import sys
import uuid

GENESIS = bytes(32)
DECODER = json.JSONDecoder()
TIME = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$"
)


def members(line):
    """The top-level members of a JSON object as raw text, by position in the line, so
    data and metadata are hashed exactly as sent, never re-serialised."""
    out, i = {}, line.index("{") + 1
    while True:
        while line[i] in " \t":
            i += 1
        if line[i] == "}":
            return out
        key, i = DECODER.raw_decode(line, i)
        while line[i] in " \t:":
            i += 1
        start = i
        _, i = DECODER.raw_decode(line, i)
        out[key] = line[start:i]
        while line[i] in " \t,":
            i += 1


def micros(text):
    """RFC 3339 to microseconds since the Unix epoch."""
    m = TIME.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text}")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    frac = (frac or "").ljust(9, "0")
    return seconds * 1_000_000 + int(frac[:6])


def length_prefixed(data):
    return len(data).to_bytes(4, "big") + data


def canonical(raw):
    """ADR 0003: position u64; event id 16 bytes; stream id (u32 length + ASCII); stream
    version u64; event type (u32 length + ASCII); schema version u32; data and metadata
    (u32 length + UTF-8 text as stored); recorded_at i64 microseconds; big-endian."""
    value = lambda name: json.loads(raw[name])
    return b"".join(
        [
            value("position").to_bytes(8, "big"),
            uuid.UUID(value("event_id")).bytes,
            length_prefixed(value("stream_id").encode("ascii")),
            value("stream_version").to_bytes(8, "big"),
            length_prefixed(value("event_type").encode("ascii")),
            value("schema_version").to_bytes(4, "big"),
            length_prefixed(raw["data"].encode("utf-8")),
            length_prefixed(raw["metadata"].encode("utf-8")),
            micros(value("recorded_at")).to_bytes(8, "big", signed=True),
        ]
    )


def main(argv):
    report = {
        "ok": True,
        "checked": 0,
        "head_position": 0,
        "head_hash": GENESIS.hex(),
        "first_bad_position": None,
        "anchors_matched": 0,
        "anchors_mismatched": [],
    }
    hashes = {}
    prev, expected = None, None
    with open(argv[1], encoding="utf-8") as export:
        for line in export:
            if not line.strip():
                continue
            raw = members(line)
            position = json.loads(raw["position"])
            stored_prev = bytes.fromhex(json.loads(raw["prev_hash"]))
            stored = bytes.fromhex(json.loads(raw["hash"]))
            if prev is None:
                # The first line: from the genesis hash, or on trust for a partial export.
                prev = GENESIS if position == 1 else stored_prev
                expected = position
            recomputed = hashlib.sha256(prev + canonical(raw)).digest()
            if position != expected or stored_prev != prev or stored != recomputed:
                report["ok"] = False
                report["first_bad_position"] = expected
                break
            hashes[position] = stored
            report["checked"] += 1
            report["head_position"] = position
            report["head_hash"] = stored.hex()
            prev, expected = stored, position + 1
    if len(argv) > 2:
        with open(argv[2], encoding="utf-8") as f:
            anchors = json.load(f)
        items = anchors["items"] if isinstance(anchors, dict) else anchors
        for anchor in items:
            held = hashes.get(anchor["position"])
            if held is None:
                continue
            if held.hex() == anchor["hash"]:
                report["anchors_matched"] += 1
            else:
                report["ok"] = False
                report["anchors_mismatched"].append(anchor["position"])
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
