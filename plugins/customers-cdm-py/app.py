"""``customers-cdm`` in Python: maps Debezium change events of a SQL Server
``dbo.customers`` table to the canonical customer record on ``cdm.customer``, record for
record and byte for byte what the Rust plugin in ``plugins/customers-cdm`` publishes
(tests/golden.rs runs both over the samples).

- columns are renamed to the CDM's camelCase names, first and last name joined;
- the email is masked (``j***@example.com``);
- ``credit_limit`` (decimal) is decoded from Debezium's encoding into a decimal string,
  whatever ``decimal.handling.mode`` the connector used (``precise`` base64, ``string``,
  ``double``); the scale comes from the event's schema when it has one, else from config;
- ``birth_date`` (days since epoch), ``created_at`` (epoch ms) and ``updated_at`` (epoch
  ns) become ISO-8601 strings;
- the key is ``{"customerId": <id>}``; creates, updates and snapshot reads publish the new
  state (upsert); deletes publish a tombstone, so ``cdm.customer`` can be compacted.

Config (``Settings``, typed and checked once at ``init``; an unknown key or a bad value
refuses the plugin with the key named): ``topic`` (default ``cdm.customer``);
``decimal.handling.mode``: ``precise`` (default), ``string`` or ``double``;
``credit_limit.scale`` when events carry no schema (default 2).
"""

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import sluice_sdk
from sluice_sdk import Record, Reject, debezium


@dataclass
class Settings:
    """The plugin's configuration (the Rust plugin's ``Settings``)."""

    topic: str = "cdm.customer"
    decimal_mode: Literal["precise", "string", "double"] = field(
        default="precise", metadata={"key": "decimal.handling.mode"}
    )
    credit_limit_scale: sluice_sdk.U32 = field(default=2, metadata={"key": "credit_limit.scale"})


@dataclass
class CustomerRow:
    """A row of ``dbo.customers`` as Debezium encodes it."""

    id: int
    first_name: Optional[str] = None
    last_name: Optional[str] = None
    email: Optional[str] = None
    credit_limit: Optional[Any] = None
    birth_date: Optional[int] = None
    created_at: Optional[int] = None
    updated_at: Optional[int] = None
    customer_guid: Optional[str] = None
    is_active: Optional[bool] = None


@sluice_sdk.transform(config=Settings)
def customers_cdm(event, settings: Settings):
    """Maps one change event of ``dbo.customers`` to its canonical record (or tombstone)."""
    topic = settings.topic
    op = event.op
    if op in ("truncate", "message"):
        return []
    row = event.row(CustomerRow)
    key = {"customerId": row.id}
    if op == "delete":
        return [Record.to(topic).json_key(key).tombstone()]

    source = event.source
    canonical = {
        "customerId": row.id,
        "firstName": row.first_name,
        "lastName": row.last_name,
        "fullName": full_name(row.first_name, row.last_name),
        "emailMasked": None if row.email is None else mask_email(row.email),
        "creditLimit": None
        if row.credit_limit is None
        else decode_decimal(row.credit_limit, settings.decimal_mode, credit_limit_scale(event, settings)),
        "birthDate": None if row.birth_date is None else debezium.date_from_epoch_days(row.birth_date),
        "createdAt": None
        if row.created_at is None
        else debezium.timestamp_from_epoch_millis(row.created_at),
        "updatedAt": None
        if row.updated_at is None
        else debezium.timestamp_from_epoch_nanos(row.updated_at),
        "externalId": None if row.customer_guid is None else ascii_lowercase(row.customer_guid),
        "active": True if row.is_active is None else row.is_active,
        "source": {
            "table": event.qualified_table(),
            "op": event.op_code,
            "snapshot": event.is_snapshot,
            "commitLsn": source.commit_lsn,
            "changeLsn": source.change_lsn,
            "tsMs": source.ts_ms,
        },
    }
    return [
        Record.to(topic).json_key(key).json_value(canonical).header("cdm.schema", "customer.v1")
    ]


def credit_limit_scale(event, settings: Settings) -> int:
    """The scale from the event's schema, else from config."""
    scale = event.decimal_scale("credit_limit")
    return settings.credit_limit_scale if scale is None else scale


def decode_decimal(raw, mode: str, scale: int) -> str:
    """Decodes a decimal column in any of Debezium's ``decimal.handling.mode``s."""
    if mode == "precise" and isinstance(raw, str):
        try:
            return debezium.decimal_from_base64(raw, scale)
        except debezium.DecodeError as e:
            raise Reject(str(e), "decode") from None
    if mode == "string" and isinstance(raw, str):
        return raw
    if mode == "double" and type(raw) in (int, float):
        return debezium.fixed(float(raw), scale)
    raise Reject(
        f"credit_limit: {sluice_sdk.to_json(raw).decode()} is not a decimal in `{mode}` mode",
        "bad-decimal",
    )


def full_name(first: Optional[str], last: Optional[str]) -> str:
    if first is not None and last is not None:
        return f"{first} {last}"
    return first if first is not None else last if last is not None else ""


def mask_email(email: str) -> str:
    """``john.doe@example.com`` → ``j***@example.com``; text without ``@`` is masked whole."""
    local, at, domain = email.partition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lowercase(text: str) -> str:
    """Like Rust's ``to_ascii_lowercase``: only A-Z change."""
    return text.translate(_ASCII_LOWER)
