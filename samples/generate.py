#!/usr/bin/env python3
"""Writes the sample Debezium SQL Server change events in samples/ (deterministic).

Run from anywhere: python3 samples/generate.py
- customers.jsonl         bare payload form (schemas.enable=false)
- customers.schema.jsonl  the same events with schemas (schemas.enable=true)
- inventory.jsonl         bare form, several tables of one database
"""
import base64
import datetime
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX, DB, SCHEMA = "server1", "testDB", "dbo"
EPOCH = datetime.date(1970, 1, 1)


def decimal(text):
    """Debezium precise decimal: base64 of the unscaled big-endian two's complement
    (Java BigInteger.toByteArray: minimal length)."""
    unscaled = int(text.replace(".", ""))
    length = 1
    while True:
        try:
            raw = unscaled.to_bytes(length, "big", signed=True)
            break
        except OverflowError:
            length += 1
    return base64.b64encode(raw).decode()


def days(iso):
    """io.debezium.time.Date: days since 1970-01-01 (negative before)."""
    return (datetime.date.fromisoformat(iso) - EPOCH).days


def _micros(iso):
    """Exact microseconds since the epoch of a naive UTC ISO timestamp (integer math)."""
    delta = datetime.datetime.fromisoformat(iso) - datetime.datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def millis(iso):
    """io.debezium.time.Timestamp (datetime2(0-3), datetime): epoch milliseconds."""
    return _micros(iso) // 1000


def nanos(iso, extra_ns):
    """io.debezium.time.NanoTimestamp (datetime2(7)): epoch nanoseconds; `extra_ns` adds
    the digits below a microsecond that Python's datetime cannot hold."""
    return _micros(iso) * 1000 + extra_ns


def customer(id, first, last, email, credit, birth, created, updated, updated_ns, guid, active):
    return {
        "id": id,
        "first_name": first,
        "last_name": last,
        "email": email,
        "credit_limit": decimal(credit) if credit is not None else None,
        "birth_date": days(birth) if birth else None,
        "created_at": millis(created),
        "updated_at": nanos(updated, updated_ns),
        "customer_guid": guid,
        "is_active": active,
    }


class Lsn:
    """Hands out increasing LSNs (hex 8:8:4) like a SQL Server log."""

    def __init__(self):
        self.vlf, self.block = 0x2B, 0xAC8

    def commit(self):
        """The next commit; returns slot -> LSN within it (change LSNs, the commit LSN)."""
        self.block += 0x10
        vlf, block = self.vlf, self.block
        return lambda slot: f"{vlf:08x}:{block:08x}:{slot:04x}"


TS = [millis("2026-11-20T08:15:30.000") + i * 1375 for i in range(64)]


def source(table, ts, snapshot, change_lsn=None, commit_lsn=None, serial=None):
    return {
        "version": "3.0.0.Final",
        "connector": "sqlserver",
        "name": PREFIX,
        "ts_ms": ts,
        "snapshot": snapshot,
        "db": DB,
        "sequence": None,
        "ts_us": ts * 1000,
        "ts_ns": ts * 1_000_000,
        "schema": SCHEMA,
        "table": table,
        "change_lsn": change_lsn,
        "commit_lsn": commit_lsn,
        "event_serial_no": serial,
    }


def envelope(op, before, after, src, ts, tx=None):
    """The envelope in Debezium 3.x field order (JsonConverter writes a struct's fields in
    schema order). `ts` is when the connector processed the event (Instant.now(): µs
    precision); `tx` is the transaction block (null unless provide.transaction.metadata)."""
    ts_us = ts * 1000 + 233_417
    return {"before": before, "after": after, "source": src, "transaction": tx, "op": op,
            "ts_ms": ts_us // 1000, "ts_us": ts_us, "ts_ns": ts_us * 1000}


def tx_block(commit_lsn, total_order=1, data_collection_order=1):
    """Debezium's SQL Server transaction id is the commit LSN (SqlServerEventMetadataProvider)."""
    return {"id": commit_lsn, "total_order": total_order, "data_collection_order": data_collection_order}


def line(table, key, value):
    return {"topic": f"{PREFIX}.{DB}.{SCHEMA}.{table}", "key": key, "value": value}


def customers_events():
    lsn = Lsn()
    snapshot_lsn = lsn.commit()(1)
    c1001 = customer(1001, "Sally", "Thomas", "sally.thomas@example.com", "5000.00", "1985-03-14",
                     "2024-01-05T09:30:00.125", "2026-11-01T12:00:00.123456", 700, "6F9619FF-8B86-D011-B42D-00C04FC964FF", True)
    c1002 = customer(1002, "George", "Bailey", "gbailey@example.org", "1250.50", "1972-07-01",
                     "2024-02-11T14:05:10.500", "2026-11-02T08:45:12.000001", 1, "0E984725-C51C-4BF4-9960-E1C80E27ABA0", True)
    c1003 = customer(1003, "Edward", "Walker", "ed@walker.example.com", "0.00", None,
                     "2024-03-20T18:00:00.000", "2026-11-03T23:59:59.999999", 999, "7C9E6679-7425-40DE-944B-E07FC1F90AE7", False)
    events = []
    snap = [(c1001, "first"), (c1002, "true"), (c1003, "last")]
    for i, (row, marker) in enumerate(snap):
        src = source("customers", TS[0], marker, None, snapshot_lsn, None)
        events.append(line("customers", {"id": row["id"]}, envelope("r", None, row, src, TS[0] + 3 * i)))

    c1004 = customer(1004, "Anne", "Kretchmar", "annek@noanswer.example.org", "320.00", "1999-12-31",
                     "2026-11-20T08:15:31.250", "2026-11-20T08:15:31.250000", 0, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", True)
    commit = lsn.commit()
    events.append(line("customers", {"id": 1004}, envelope(
        "c", None, c1004, source("customers", TS[4], "false", commit(2), commit(3), 1), TS[4], tx_block(commit(3)))))

    c1001b = dict(c1001, email="sally.t@example.org", credit_limit=decimal("7500.25"),
                  updated_at=nanos("2026-11-20T08:16:02.123456", 789))
    commit = lsn.commit()
    events.append(line("customers", {"id": 1001}, envelope(
        "u", c1001, c1001b, source("customers", TS[6], "false", commit(2), commit(4), 2), TS[6])))

    c1004b = dict(c1004, email=None, updated_at=nanos("2026-11-20T08:16:30.000000", 5))
    commit = lsn.commit()
    events.append(line("customers", {"id": 1004}, envelope(
        "u", c1004, c1004b, source("customers", TS[8], "false", commit(2), commit(4), 2), TS[8])))

    commit = lsn.commit()
    events.append(line("customers", {"id": 1002}, envelope(
        "d", c1002, None, source("customers", TS[10], "false", commit(2), commit(3), 1), TS[10])))
    events.append(line("customers", {"id": 1002}, None))  # Debezium's tombstone

    c1005 = customer(1005, "Zoë", "Łukaszewicz", "zoe.lukaszewicz@example.com", "-250.75", "1961-05-09",
                     "2026-11-20T08:17:00.001", "2026-11-20T08:17:00.001000", 42, "16FD2706-8BAF-433B-82EB-8C7FADA847DA", True)
    commit = lsn.commit()
    events.append(line("customers", {"id": 1005}, envelope(
        "c", None, c1005, source("customers", TS[12], "false", commit(2), commit(3), 1), TS[12], tx_block(commit(3)))))

    c1003b = dict(c1003, first_name="Édouard", last_name="Walker-Ødegård", is_active=True,
                  updated_at=nanos("2026-11-20T08:17:45.500000", 1))
    commit = lsn.commit()
    events.append(line("customers", {"id": 1003}, envelope(
        "u", c1003, c1003b, source("customers", TS[14], "false", commit(2), commit(4), 2), TS[14])))
    return events


# Kafka Connect schemas as Debezium 3.0.0.Final declares them, in the form JsonConverter
# (schemas.enable=true) writes: keys in asJsonSchema order, struct fields in schema order.
def field(name, type_, optional, logical=None, params=None, version=None, default=None):
    """One field's schema, keys in JsonConverter.asJsonSchema's order."""
    f = {"type": type_, "optional": optional}
    if logical:
        f["name"] = logical
    if version is not None:
        f["version"] = version
    if params:
        f["parameters"] = params
    if default is not None:
        f["default"] = default
    f["field"] = name
    return f


def customers_row_schema(name_field):
    return {
        "type": "struct",
        "fields": [
            field("id", "int32", False),
            field("first_name", "string", False),
            field("last_name", "string", False),
            field("email", "string", True),
            field("credit_limit", "bytes", True, "org.apache.kafka.connect.data.Decimal",
                  {"scale": "2", "connect.decimal.precision": "12"}, 1),
            field("birth_date", "int32", True, "io.debezium.time.Date", version=1),
            field("created_at", "int64", False, "io.debezium.time.Timestamp", version=1),
            field("updated_at", "int64", False, "io.debezium.time.NanoTimestamp", version=1),
            field("customer_guid", "string", False),
            field("is_active", "boolean", False),
        ],
        "optional": True,
        "name": f"{PREFIX}.{DB}.{SCHEMA}.customers.Value",
        "field": name_field,
    }


SOURCE_SCHEMA = {
    "type": "struct",
    "fields": [
        field("version", "string", False),
        field("connector", "string", False),
        field("name", "string", False),
        field("ts_ms", "int64", False),
        # 3.0.0.Final's schema lists fewer values than it emits (first, ...); fixed in 3.0.x.
        field("snapshot", "string", True, "io.debezium.data.Enum", {"allowed": "true,last,false,incremental"}, 1, "false"),
        field("db", "string", False),
        field("sequence", "string", True),
        field("ts_us", "int64", True),
        field("ts_ns", "int64", True),
        field("schema", "string", False),
        field("table", "string", False),
        field("change_lsn", "string", True),
        field("commit_lsn", "string", True),
        field("event_serial_no", "int64", True),
    ],
    "optional": False,
    "name": "io.debezium.connector.sqlserver.Source",
    "field": "source",
}

TRANSACTION_SCHEMA = {
    "type": "struct",
    "fields": [
        field("id", "string", False),
        field("total_order", "int64", False),
        field("data_collection_order", "int64", False),
    ],
    "optional": True,
    "name": "event.block",
    "version": 1,
    "field": "transaction",
}

ENVELOPE_SCHEMA = {
    "type": "struct",
    "fields": [
        customers_row_schema("before"),
        customers_row_schema("after"),
        SOURCE_SCHEMA,
        TRANSACTION_SCHEMA,
        field("op", "string", False),
        field("ts_ms", "int64", True),
        field("ts_us", "int64", True),
        field("ts_ns", "int64", True),
    ],
    "optional": False,
    "name": f"{PREFIX}.{DB}.{SCHEMA}.customers.Envelope",
    "version": 2,
}

KEY_SCHEMA = {
    "type": "struct",
    "fields": [field("id", "int32", False)],
    "optional": False,
    "name": f"{PREFIX}.{DB}.{SCHEMA}.customers.Key",
}


def with_schemas(event):
    value = event["value"]
    return {
        "topic": event["topic"],
        "key": {"schema": KEY_SCHEMA, "payload": event["key"]},
        "value": None if value is None else {"schema": ENVELOPE_SCHEMA, "payload": value},
    }


def inventory_events():
    lsn = Lsn()
    out = []

    def emit(table, key, op, before, after, serial=1, tx=None):
        commit = lsn.commit()
        ts = TS[len(out) + 20]
        out.append(line(table, key, envelope(op, before, after, source(table, ts, "false", commit(2), commit(3), serial), ts, tx)))

    cust = customer(2001, "Maria", "Garcia", "maria.garcia@example.com", "900.00", "1990-06-15",
                    "2026-11-20T09:00:00.000", "2026-11-20T09:00:00.000000", 0, "3F2504E0-4F89-11D3-9A0C-0305E82C3301", True)
    emit("customers", {"id": 2001}, "c", None, cust)
    product = {"id": 501, "sku": "SKU-0501", "name": "Espresso cups (set of 4)", "price": decimal("24.90")}
    emit("products", {"id": 501}, "c", None, product)
    product2 = {"id": 502, "sku": "SKU-0502", "name": "Milk jug 350 ml", "price": decimal("12.00")}
    emit("products", {"id": 502}, "c", None, product2)
    order = {"id": 9001, "customer_id": 2001, "order_date": days("2026-11-20"), "total": decimal("74.70"), "status": "NEW"}
    emit("orders", {"id": 9001}, "c", None, order)
    emit("audit_log", {"id": 1}, "c", None, {"id": 1, "message": "order 9001 created by web"})
    order_b = dict(order, status="PAID")
    emit("orders", {"id": 9001}, "u", order, order_b, 2)
    emit("audit_log", {"id": 2}, "c", None, {"id": 2, "message": "order 9001 paid"})
    product2_b = dict(product2, price=decimal("11.50"))
    emit("products", {"id": 502}, "u", product2, product2_b, 2)
    order2 = {"id": 9002, "customer_id": 2001, "order_date": days("2026-11-20"), "total": decimal("11.50"), "status": "NEW"}
    emit("orders", {"id": 9002}, "c", None, order2)
    emit("orders", {"id": 9002}, "d", order2, None)
    out.append(line("orders", {"id": 9002}, None))  # tombstone
    cust_b = dict(cust, email="m.garcia@example.org", updated_at=nanos("2026-11-20T09:05:00.000000", 77))
    emit("customers", {"id": 2001}, "u", cust, cust_b, 2)
    return out


def write(name, events):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    customers = customers_events()
    write("customers.jsonl", customers)
    write("customers.schema.jsonl", [with_schemas(e) for e in customers])
    write("inventory.jsonl", inventory_events())
