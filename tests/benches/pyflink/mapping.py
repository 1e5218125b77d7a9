"""``customers-cdm`` as a plain Python function over one JSON line, for the contenders of
the PyFlink comparison that are not sluice: the PyFlink job's map function and the plain
CPython loop both call ``map_line``.

It does what ``plugins/customers-cdm-py`` does (the same decoders: ``sluice_sdk.debezium``
of ``sdk/python``, imported as a plain module) and writes each record as the line sluice's
file sink writes (``{"topic", "key", "value", "headers"}``), so the outputs of every
contender compare equal. It reads the keyed lines ``compare.py`` generates (a bare Debezium
envelope as ``value``; no value schema, so the decimal scale is the default 2).
"""

import json

from sluice_sdk import debezium

TOPIC = "cdm.customer"
SCALE = 2
_NO_SNAPSHOT = (None, False, "false")
# One encoder, as sluice_sdk.to_json: compact, keys in insertion order, UTF-8 unescaped.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def map_line(line: str):
    """The output lines (zero or one) for one input line."""
    envelope = json.loads(line)["value"]
    if "payload" in envelope and "op" not in envelope:
        envelope = envelope["payload"]
    op = envelope["op"]
    if op in ("t", "m"):
        return []
    row = envelope["before"] if op == "d" else envelope["after"]
    key = {"customerId": row["id"]}
    if op == "d":
        return [_encode({"topic": TOPIC, "key": key, "value": None, "headers": []})]
    source = envelope["source"]
    first, last, email = row.get("first_name"), row.get("last_name"), row.get("email")
    credit, birth = row.get("credit_limit"), row.get("birth_date")
    created, updated = row.get("created_at"), row.get("updated_at")
    guid, active = row.get("customer_guid"), row.get("is_active")
    schema = source.get("schema")
    canonical = {
        "customerId": row["id"],
        "firstName": first,
        "lastName": last,
        "fullName": _full_name(first, last),
        "emailMasked": None if email is None else _mask_email(email),
        "creditLimit": None if credit is None else debezium.decimal_from_base64(credit, SCALE),
        "birthDate": None if birth is None else debezium.date_from_epoch_days(birth),
        "createdAt": None if created is None else debezium.timestamp_from_epoch_millis(created),
        "updatedAt": None if updated is None else debezium.timestamp_from_epoch_nanos(updated),
        "externalId": None if guid is None else guid.translate(_ASCII_LOWER),
        "active": True if active is None else active,
        "source": {
            "table": source["table"] if schema is None else f"{schema}.{source['table']}",
            "op": op,
            "snapshot": source.get("snapshot") not in _NO_SNAPSHOT,
            "commitLsn": source.get("commit_lsn"),
            "changeLsn": source.get("change_lsn"),
            "tsMs": source.get("ts_ms"),
        },
    }
    record = {"topic": TOPIC, "key": key, "value": canonical, "headers": [["cdm.schema", "customer.v1"]]}
    return [_encode(record)]


def _full_name(first, last) -> str:
    if first is not None and last is not None:
        return f"{first} {last}"
    return first if first is not None else last if last is not None else ""


def _mask_email(email: str) -> str:
    local, at, domain = email.partition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def main() -> None:
    """The plain CPython loop: ``python3 mapping.py <events.jsonl> <out.jsonl>``."""
    import sys

    with open(sys.argv[1], encoding="utf-8") as events, open(sys.argv[2], "w", encoding="utf-8") as out:
        for line in events:
            for record in map_line(line):
                out.write(record)
                out.write("\n")


if __name__ == "__main__":
    main()
