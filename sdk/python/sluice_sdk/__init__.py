"""The sluice plugin SDK for Python: the Rust SDK's ergonomics for plugins built into
components with componentize-py (``sluice plugin build``).

A plugin author writes one function and one decorator::

    from dataclasses import dataclass
    from typing import Optional
    import sluice_sdk
    from sluice_sdk import Record

    @dataclass
    class Customer:
        id: int
        email: Optional[str] = None

    @sluice_sdk.transform
    def route(event):
        customer = event.after(Customer)
        return Record.to("cdm.customer").json_key({"id": customer.id}).json_value({"id": customer.id})

The decorator registers the function; the build wraps it into the
``sluice:transform/transform`` export, which calls it once per event of each batch with a
``ChangeEvent`` and turns what it returns (a list of ``Record``s, one ``Record``, or
``None`` to filter the event out) into the event's outcome, and a raised ``Reject`` into a
rejection (the event goes to the dead-letter topic). Any other exception is logged at
``error`` and traps the instance, like a Rust panic. ``@sluice_sdk.transform(init=check)``
names a ``check(config)`` that validates the configuration once per instance; a raised
exception's message refuses it.

Configuration is typed with a dataclass declared once, ``@sluice_sdk.transform(config=
Settings)``: ``init`` converts the manifest's string pairs into its fields (``str``,
``int``, ``U32``, ``float``, ``bool``, ``Optional[...]``, ``Literal[...]``; a field's
``metadata={"key": "decimal.handling.mode"}`` names a key that is not an identifier), a
field without a default is required, an unknown key or bad value refuses the plugin with an
error naming the key (the Rust SDK's messages), and the function is called as
``f(event, settings)``. ``sluice_sdk.config()`` keeps the raw pairs.

The module also runs natively (``python3 -m unittest`` on plugin logic): then ``log``
writes to standard error.
"""

import dataclasses
import enum
import json
import struct
import sys
import types
import typing

from . import debezium

__all__ = [
    "ChangeEvent",
    "Header",
    "Operation",
    "Origin",
    "SnapshotMarker",
    "SourceInfo",
    "TransactionInfo",
    "Config",
    "Record",
    "Reject",
    "config",
    "debezium",
    "event_from_json",
    "log",
    "to_json",
    "transform",
]


def log(level: str, message: str) -> None:
    """Writes one line to the host's log at ``level`` (``trace``, ``debug``, ``info``,
    ``warn``, ``error``), tagged with the plugin's name and version. The host drops lines
    below its log level and caps how many lines one batch may write."""
    try:
        from wit_world.imports import host
    except ImportError:
        print(f"[plugin {level}] {message}", file=sys.stderr)
        return
    host.log(host.LogLevel[level.upper()], str(message))


class Reject(Exception):
    """Why a plugin refuses an event: raise one, and the event goes to the dead-letter
    topic with ``reason`` (and ``code`` when set) in its headers."""

    def __init__(self, reason: str, code: typing.Optional[str] = None):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Config:
    """The plugin's configuration: the manifest's ``config`` pairs, in order."""

    def __init__(self, pairs):
        self.pairs = [tuple(pair) for pair in pairs]
        # Plugins read their config per event: one dict lookup, not a scan of the pairs
        # (`dict` keeps the last value of a repeated key, as `get` promises).
        self._latest = dict(self.pairs)

    def get(self, key: str, default=None):
        """The value of ``key``, else ``default``. When a key is repeated, the last wins."""
        return self._latest.get(key, default)

    def u32(self, key: str) -> typing.Optional[int]:
        """The value of ``key`` as an unsigned 32-bit integer, ``None`` when absent; raises
        ``ValueError`` with the message the Rust SDK's ``config.parse::<u32>(key)`` gives."""
        raw = self.get(key)
        if raw is None:
            return None
        problem = _u32_problem(raw)
        if problem:
            raise ValueError(f"config `{key}` = {json.dumps(raw, ensure_ascii=False)}: {problem}")
        return int(raw)


def _u32_problem(raw: str) -> typing.Optional[str]:
    """Rust's ``u32::from_str`` error for ``raw``, or ``None`` when it parses."""
    if raw == "":
        return "cannot parse integer from empty string"
    digits = raw[1:] if raw.startswith("+") else raw
    if not digits or not all("0" <= c <= "9" for c in digits):
        return "invalid digit found in string"
    if int(digits) > 0xFFFF_FFFF:
        return "number too large to fit in target type"
    return None


_config = Config([])
_settings = None

U32 = typing.NewType("U32", int)
"""An unsigned 32-bit integer field of a settings dataclass (Rust's ``u32``)."""


def _int_problem(raw: str, low: int, high: int) -> typing.Optional[str]:
    """Rust's integer ``from_str`` error for ``raw`` in ``low..=high``, or ``None``."""
    if raw == "":
        return "cannot parse integer from empty string"
    sign = raw[0] if raw[0] in "+-" else ""
    digits = raw[len(sign):]
    if not digits or not all("0" <= c <= "9" for c in digits) or (sign == "-" and low == 0):
        return "invalid digit found in string"
    value = int(raw)
    if value > high:
        return "number too large to fit in target type"
    if value < low:
        return "number too small to fit in target type"
    return None


def _convert(raw: str, kind):
    """``raw`` as a value of the field type ``kind``; raises ``ValueError(problem)``."""
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is types.UnionType:
        inner = [k for k in typing.get_args(kind) if k is not type(None)]
        if len(inner) == 1:
            return _convert(raw, inner[0])
    if origin is typing.Literal:
        allowed = typing.get_args(kind)
        if raw not in allowed:
            listed = ", ".join(f"`{a}`" for a in allowed)
            raise ValueError(f"unknown variant `{raw}`, expected one of {listed}")
        return raw
    text = raw.strip()
    if kind is U32:
        problem = _int_problem(text, 0, 0xFFFF_FFFF)
    elif kind is int:
        problem = _int_problem(text, -(2**63), 2**63 - 1)
    elif kind is bool:
        if raw not in ("true", "false"):
            raise ValueError("provided string was not `true` or `false`")
        return raw == "true"
    elif kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("invalid float literal") from None
    elif kind is str:
        return raw
    else:
        raise TypeError(f"settings field type {kind!r} is not supported")
    if problem:
        raise ValueError(problem)
    return int(text)


def parse_settings(pairs, settings_type):
    """An instance of the dataclass ``settings_type`` from configuration pairs (later
    pairs override earlier ones); raises ``ValueError`` naming the key, as the Rust SDK."""
    latest = dict(tuple(pair) for pair in pairs)
    hints = typing.get_type_hints(settings_type)
    fields = [f for f in dataclasses.fields(settings_type) if f.init]
    keys = {f.metadata.get("key", f.name): f for f in fields}
    for key in latest:
        if key not in keys:
            listed = ", ".join(f"`{k}`" for k in keys)
            raise ValueError(f"config: unknown field `{key}`, expected one of {listed}")
    values = {}
    for key, field in keys.items():
        if key not in latest:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ValueError(f"config: missing field `{key}`")
            continue
        raw = latest[key]
        try:
            values[field.name] = _convert(raw, hints[field.name])
        except ValueError as e:
            raise ValueError(f"config `{key}` = {json.dumps(raw, ensure_ascii=False)}: {e}") from None
    return settings_type(**values)


def settings():
    """The typed settings this instance was initialised with (``@transform(config=...)``),
    or ``None``."""
    return _settings


def config() -> Config:
    """The configuration this instance was initialised with (empty before ``init``)."""
    return _config


# `json.dumps` with any non-default argument builds a new encoder per call; one encoder,
# made once, serialises the same bytes at a fraction of the cost per record.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode



def _not_serializable(value):
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _c_encoder():
    """``json``'s C encoder, called directly: ``JSONEncoder.encode`` runs the Python of
    ``iterencode`` around it on every call (~15% of a record's serialisation). ``None``
    when this Python lacks it or it does not write what ``_ENCODE`` writes."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None

    def encode(value):
        # A fresh `markers` dict per call: circular data is refused as `json` refuses it.
        return "".join(
            make({}, _not_serializable, json.encoder.encode_basestring, None, ":", ",", False, False, True)(value, 0)
        )

    probe = {"a": [1, 2.5, None, True, "é\"\n"], "b": {"c": -0.0, "d": 10**20}}
    try:
        return encode if encode(probe) == _ENCODE(probe) else None
    except Exception:
        return None


_C_ENCODE = _c_encoder()


def to_json(value) -> bytes:
    """JSON bytes of ``value`` as the Rust SDK (serde_json) writes them: compact, keys in
    insertion order, non-ASCII text unescaped."""
    if _C_ENCODE is not None:
        return _C_ENCODE(value).encode()
    return _ENCODE(value).encode()


class Operation(enum.Enum):
    """What happened to the row (the WIT ``operation`` enum)."""

    CREATE = 0
    UPDATE = 1
    DELETE = 2
    READ = 3
    TRUNCATE = 4
    MESSAGE = 5


class SnapshotMarker(enum.Enum):
    """Debezium's ``source.snapshot`` marker (the WIT ``snapshot-marker`` enum)."""

    NONE = 0
    IN_PROGRESS = 1
    FIRST = 2
    FIRST_IN_DATA_COLLECTION = 3
    LAST_IN_DATA_COLLECTION = 4
    LAST = 5
    INCREMENTAL = 6


OP_CODES = {"CREATE": "c", "UPDATE": "u", "DELETE": "d", "READ": "r", "TRUNCATE": "t", "MESSAGE": "m"}
# By the enum's index, as the packed batch carries it: tuple lookups, where `.name` of an
# `Enum` member runs Python code of the `enum` module on every event.
_OP_NAMES = tuple(op.name.lower() for op in Operation)
_OP_LETTERS = tuple(OP_CODES[op.name] for op in Operation)
_SNAPSHOTS = tuple(SnapshotMarker)

# The packed batch (`wit/packed.wit`): little-endian u32 words.
_NONE = 0xFFFF_FFFF
_PREAMBLE = struct.Struct("<4I")
_EVENT_WORDS = 49
_EVENT = struct.Struct(f"<{_EVENT_WORDS}I")
_HEADER = struct.Struct("<4I")
_WORD = struct.Struct("<I").pack
_TWO_WORDS = struct.Struct("<2I").pack
_NONE_WORD = _WORD(_NONE)


def _s64(low: int, high: int) -> int:
    value = low | high << 32
    return value - (1 << 64) if value >= 1 << 63 else value


class SourceInfo:
    """Where in the source database the change happened (Debezium's ``source`` block):
    ``connector``, ``name``, ``db``, ``schema``, ``table``, ``change_lsn``, ``commit_lsn``,
    ``event_serial_no``, ``snapshot`` (a ``SnapshotMarker``), ``ts_ms``. Each is read from
    the batch when asked for: a plugin reads two or three of the ten."""

    __slots__ = ("_batch", "_w")

    def __init__(self, batch, words):
        self._batch = batch
        self._w = words

    @property
    def connector(self) -> str:
        return self._batch.shared_text(self._w[11], self._w[12])

    @property
    def name(self) -> str:
        return self._batch.shared_text(self._w[13], self._w[14])

    @property
    def db(self) -> str:
        return self._batch.shared_text(self._w[15], self._w[16])

    @property
    def schema(self) -> typing.Optional[str]:
        return self._batch.shared_text(self._w[17], self._w[18])

    @property
    def table(self) -> str:
        return self._batch.shared_text(self._w[19], self._w[20])

    @property
    def change_lsn(self) -> typing.Optional[str]:
        return self._batch.text(self._w[21], self._w[22])

    @property
    def commit_lsn(self) -> typing.Optional[str]:
        return self._batch.text(self._w[23], self._w[24])

    @property
    def event_serial_no(self) -> typing.Optional[int]:
        w = self._w
        return _s64(w[26], w[27]) if w[25] else None

    @property
    def snapshot(self) -> SnapshotMarker:
        return _SNAPSHOTS[self._w[28]]

    @property
    def ts_ms(self) -> typing.Optional[int]:
        w = self._w
        return _s64(w[30], w[31]) if w[29] else None

    def __repr__(self):
        names = ("connector", "name", "db", "schema", "table", "change_lsn", "commit_lsn")
        names += ("event_serial_no", "snapshot", "ts_ms")
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"SourceInfo({fields})"


class TransactionInfo:
    """Debezium's ``transaction`` block."""

    __slots__ = ("id", "total_order", "data_collection_order")

    def __init__(self, id, total_order, data_collection_order):  # noqa: A002 (the WIT name)
        self.id = id
        self.total_order = total_order
        self.data_collection_order = data_collection_order


class Origin:
    """Where the event was read from."""

    __slots__ = ("topic", "partition", "offset")

    def __init__(self, topic, partition, offset):
        self.topic = topic
        self.partition = partition
        self.offset = offset


class Header:
    """One record header: ``key`` text, ``value`` bytes or ``None``."""

    __slots__ = ("key", "value")

    def __init__(self, key, value):
        self.key = key
        self.value = value


class _Batch:
    """One packed batch: its bytes, where its header table starts, and the text of the
    strings consecutive events share (the host writes them once), decoded once."""

    __slots__ = ("data", "headers_at", "shared", "qualified")

    def __init__(self, data, headers_at):
        self.data = data
        self.headers_at = headers_at
        self.shared = {}
        self.qualified = {}

    def text(self, offset, length):
        if offset == _NONE:
            return None
        return self.data[offset : offset + length].decode()

    def shared_text(self, offset, length):
        if offset == _NONE:
            return None
        text = self.shared.get(offset)
        if text is None:
            text = self.shared[offset] = self.data[offset : offset + length].decode()
        return text


class ChangeEvent:
    """One change event, decoded from its Debezium envelope by the host. Row images arrive
    as JSON text and are parsed only when asked for, into a dataclass the plugin names:
    ``event.after(Customer)``. Every other part is read from the batch when first asked
    for."""

    __slots__ = ("_batch", "_w")

    def __init__(self, batch, words):
        self._batch = batch
        self._w = words

    @property
    def op(self) -> str:
        """``create``, ``update``, ``delete``, ``read``, ``truncate`` or ``message``."""
        return _OP_NAMES[self._w[0]]

    @property
    def op_code(self) -> str:
        """Debezium's one-letter code of the operation (``c``, ``u``, ``d``, ...)."""
        return _OP_LETTERS[self._w[0]]

    @property
    def source(self) -> SourceInfo:
        """The source block (``connector``, ``name``, ``db``, ``schema``, ``table``,
        ``change_lsn``, ``commit_lsn``, ``event_serial_no``, ``snapshot`` (a
        ``SnapshotMarker``), ``ts_ms``)."""
        return SourceInfo(self._batch, self._w)

    @property
    def is_snapshot(self) -> bool:
        """Whether the event belongs to a snapshot (any marker but ``none``)."""
        return self._w[28] != 0

    def qualified_table(self) -> str:
        """``schema.table`` (or just ``table`` when the database has no schemas)."""
        w, batch = self._w, self._batch
        # Events that share the table's text share its schema's too (`wit/packed.wit`).
        qualified = batch.qualified.get(w[19])
        if qualified is None:
            table = batch.shared_text(w[19], w[20])
            schema = batch.shared_text(w[17], w[18])
            qualified = batch.qualified[w[19]] = table if schema is None else f"{schema}.{table}"
        return qualified

    @property
    def ts_ms(self) -> typing.Optional[int]:
        """When the connector processed the event (envelope ``ts_ms``)."""
        w = self._w
        return _s64(w[33], w[34]) if w[32] else None

    @property
    def transaction(self) -> typing.Optional[TransactionInfo]:
        """The transaction block (``id``, ``total_order``, ``data_collection_order``)."""
        w = self._w
        if not w[35]:
            return None
        return TransactionInfo(self._batch.text(w[36], w[37]), _s64(w[38], w[39]), _s64(w[40], w[41]))

    @property
    def origin(self) -> Origin:
        """Where the event was read from (``topic``, ``partition``, ``offset``)."""
        w = self._w
        partition = w[46] - (1 << 32) if w[46] >= 1 << 31 else w[46]
        return Origin(self._batch.shared_text(w[44], w[45]), partition, _s64(w[47], w[48]))

    @property
    def value(self) -> bytes:
        """The record value exactly as received (the whole Debezium envelope)."""
        w = self._w
        return self._batch.data[w[1] : w[1] + w[2]]

    @property
    def key_bytes(self) -> typing.Optional[bytes]:
        """The record key bytes as received."""
        w = self._w
        return None if w[3] == _NONE else self._batch.data[w[3] : w[3] + w[4]]

    @property
    def headers(self) -> typing.List[Header]:
        """The headers as received (``key``, ``value`` bytes or ``None``)."""
        w, batch = self._w, self._batch
        headers = []
        for index in range(w[42], w[42] + w[43]):
            key_at, key_len, value_at, value_len = _HEADER.unpack_from(batch.data, batch.headers_at + 16 * index)
            value = None if value_at == _NONE else batch.data[value_at : value_at + value_len]
            headers.append(Header(batch.text(key_at, key_len), value))
        return headers

    def header(self, key: str) -> typing.Optional[bytes]:
        """The value of the first header named ``key``."""
        for h in self.headers:
            if h.key == key:
                return h.value
        return None

    def _slice(self, word: int) -> typing.Optional[str]:
        """The JSON text of the span (inside the value) at ``word``."""
        w = self._w
        start = w[word]
        if start == _NONE:
            return None
        start += w[1]
        return self._batch.data[start : start + w[word + 1]].decode()

    def before_json(self) -> typing.Optional[str]:
        """The ``before`` image as JSON text."""
        return self._slice(5)

    def after_json(self) -> typing.Optional[str]:
        """The ``after`` image as JSON text."""
        return self._slice(7)

    def value_schema(self) -> typing.Optional[str]:
        """The Kafka Connect value schema as JSON text, when the event carried one."""
        return self._slice(9)

    def before(self, row_type=None):
        """The ``before`` image parsed (into ``row_type``, a dataclass, when given); raises a
        ``Reject`` when absent or not of that type."""
        return _parse_row("before", self._slice(5), row_type)

    def after(self, row_type=None):
        """The ``after`` image, parsed like ``before``."""
        return _parse_row("after", self._slice(7), row_type)

    def row(self, row_type=None):
        """The row as it is now: ``after`` for creates, updates and reads, ``before`` for
        deletes."""
        return self.before(row_type) if self._w[0] == 2 else self.after(row_type)

    def key(self):
        """The key, parsed. Accepts both Debezium key forms: the bare primary-key object
        and ``{"schema": ..., "payload": ...}``."""
        raw = self.key_bytes
        if raw is None:
            raise Reject("the event has no key", "missing-key")
        try:
            value = json.loads(raw)
        except ValueError as e:
            raise Reject(f"key is not JSON: {e}", "bad-key") from None
        if isinstance(value, dict) and len(value) == 2 and "schema" in value and "payload" in value:
            return value["payload"]
        return value

    def decimal_scale(self, column: str) -> typing.Optional[int]:
        """The decimal scale of ``column``, read from the value schema (``parameters.scale``
        of an ``org.apache.kafka.connect.data.Decimal`` field); ``None`` without a schema or
        when the column is not a decimal."""
        text = self.value_schema()
        if text is None:
            return None
        try:
            schema = json.loads(text)
            row = next(f for f in schema["fields"] if f.get("field") in ("after", "before"))
            field = next(f for f in row["fields"] if f.get("field") == column)
        except (ValueError, KeyError, TypeError, StopIteration):
            return None
        if field.get("name") != "org.apache.kafka.connect.data.Decimal":
            return None
        scale = (field.get("parameters") or {}).get("scale")
        return int(scale) if isinstance(scale, str) and _u32_problem(scale) is None else None


_OP_LETTER_INDEX = {letter: index for index, letter in enumerate(_OP_LETTERS)}
_SNAPSHOT_TEXT = {
    "true": SnapshotMarker.IN_PROGRESS,
    "first": SnapshotMarker.FIRST,
    "first_in_data_collection": SnapshotMarker.FIRST_IN_DATA_COLLECTION,
    "last_in_data_collection": SnapshotMarker.LAST_IN_DATA_COLLECTION,
    "last": SnapshotMarker.LAST,
    "incremental": SnapshotMarker.INCREMENTAL,
}


def event_from_json(value, *, key=None, topic="test", partition=0, offset=0, headers=()):
    """A ``ChangeEvent`` made natively from a Debezium envelope, for unit tests of plugin
    logic: ``value`` is the record value (JSON text, bytes, or the parsed ``dict``; bare or
    ``{"schema", "payload"}``), ``key`` the record key (same forms, or ``None``),
    ``headers`` ``(key, bytes or None)`` pairs. The event reads as the host's would: a
    dict is serialised compactly first, and the row images are spans of that text."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode()
    envelope = json.loads(value) if isinstance(value, str) else value
    text = value if isinstance(value, str) else to_json(envelope).decode()
    raw = text.encode()
    payload = envelope.get("payload", envelope) if "schema" in envelope else envelope
    decoder = json.JSONDecoder()

    def span(container, name):
        """Where ``container[name]`` (a member of the parsed text) lies in ``raw``."""
        if container.get(name) is None:
            return _NONE, 0
        # The member's value starts after its key; scan the text for it, checking each
        # candidate by decoding it (`raw_decode`).
        needle = to_json(name).decode() + ":"
        at = text.find(needle)
        while at != -1:
            start = at + len(needle)
            while text[start] in " \t\r\n":
                start += 1
            try:
                found, end = decoder.raw_decode(text, start)
            except ValueError:
                found = None
            if found == container[name]:
                first = len(text[:start].encode())
                return first, len(text[start:end].encode())
            at = text.find(needle, at + 1)
        raise ValueError(f"`{name}` not found in the envelope text")

    source = payload.get("source") or {}
    transaction = payload.get("transaction")
    snapshot = source.get("snapshot")
    marker = SnapshotMarker.IN_PROGRESS if snapshot is True else _SNAPSHOT_TEXT.get(str(snapshot), SnapshotMarker.NONE)
    data = bytearray()
    words = []
    data_at = 16 + 4 * _EVENT_WORDS + 16 * len(headers)

    def put(blob):
        if blob is None:
            return [_NONE, 0]
        blob = blob.encode() if isinstance(blob, str) else bytes(blob)
        at = data_at + len(data)
        data.extend(blob)
        return [at, len(blob)]

    def s64(v):
        v &= (1 << 64) - 1
        return [v & 0xFFFF_FFFF, v >> 32]

    def optional_s64(v):
        return [0, 0, 0] if v is None else [1] + s64(int(v))

    key_bytes = None if key is None else key.encode() if isinstance(key, str) else bytes(key) if isinstance(key, (bytes, bytearray)) else to_json(key)
    words += [_OP_LETTER_INDEX.get(payload.get("op"), 0)]
    words += put(raw) + put(key_bytes)
    value_at = words[1]
    for container, name in ((payload, "before"), (payload, "after"), (envelope, "schema")):
        start, length = span(container, name)
        words += [start, length]
    words += put(source.get("connector", "")) + put(source.get("name", "")) + put(source.get("db", ""))
    words += put(source.get("schema")) + put(source.get("table", ""))
    change_lsn = source.get("change_lsn", source.get("lsn"))
    if change_lsn is None and source.get("file") is not None:
        change_lsn = f"{source['file']}:{source.get('pos') or 0}"
    words += put(None if change_lsn is None else str(change_lsn))
    words += put(source.get("commit_lsn"))
    words += optional_s64(source.get("event_serial_no"))
    words += [marker.value]
    words += optional_s64(source.get("ts_ms")) + optional_s64(payload.get("ts_ms"))
    if transaction:
        words += [1] + put(str(transaction.get("id", ""))) + s64(int(transaction.get("total_order", 0)))
        words += s64(int(transaction.get("data_collection_order", 0)))
    else:
        words += [0, _NONE, 0, 0, 0, 0, 0]
    words += [0, len(headers)]
    words += put(topic) + [partition & 0xFFFF_FFFF] + s64(offset)
    header_words = []
    for header_key, header_value in headers:
        header_words += put(header_key) + put(header_value)
    assert value_at == data_at and len(words) == _EVENT_WORDS
    batch = _PREAMBLE.pack(1, 1, _EVENT_WORDS, len(headers)) + _EVENT.pack(*words)
    batch += struct.pack(f"<{len(header_words)}I", *header_words) + bytes(data)
    return ChangeEvent(_Batch(batch, 16 + 4 * _EVENT_WORDS), _EVENT.unpack_from(batch, 16))


def _parse_row(image: str, text: typing.Optional[str], row_type):
    if text is None:
        raise Reject(f"the event has no `{image}` image", "missing-image")
    try:
        row = json.loads(text)
    except ValueError as e:
        raise Reject(f"{image}: {e}", "bad-row") from None
    if row_type is None:
        return row
    try:
        return _build(row_type, row)
    except ValueError as e:
        raise Reject(f"{image}: {e}", "bad-row") from None


_BUILDERS = {}


def _fields(row_type):
    """(name, hint, required) of each field of a dataclass."""
    hints = typing.get_type_hints(row_type)
    fields = []
    for field in dataclasses.fields(row_type):
        hint = hints[field.name]
        optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
        if optional:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        required = not optional and field.default is dataclasses.MISSING
        fields.append((field.name, hint, required))
    return fields


def _check(hint, var: str, hint_var: str) -> typing.Optional[str]:
    """The Python expression that tests ``var`` against ``hint``; ``None`` when anything
    goes."""
    if hint is typing.Any or hint is object:
        return None
    if hint is int:
        return f"type({var}) is int"
    if hint is float:
        return f"(type({var}) is int or type({var}) is float)"
    if hint is bool:
        return f"type({var}) is bool"
    return f"isinstance({var}, {hint_var})"


def _mismatch(name: str, hint, value):
    expected = getattr(hint, "__name__", str(hint))
    return ValueError(f"`{name}`: expected {expected}, found {to_json(value).decode()}")


def _builder(row_type):
    """The function that builds ``row_type`` from a parsed row, made once per class.

    It is generated as straight-line Python (as ``dataclasses`` makes ``__init__``): a
    row is built per event, and a loop over the fields with a type dispatch per column
    cost more than parsing the row itself.
    """
    builder = _BUILDERS.get(row_type)
    if builder is not None:
        return builder
    namespace = {"row_type": row_type, "_mismatch": _mismatch, "ValueError": ValueError}
    lines = ["def build(row):", "    get = row.get", "    values = {}"]
    for i, (name, hint, required) in enumerate(_fields(row_type)):
        namespace[f"hint{i}"] = hint
        check = _check(hint, "value", f"hint{i}")
        lines.append(f"    value = get({name!r})")
        if required:
            lines.append("    if value is None:")
            lines.append(f"        raise ValueError({f'missing field `{name}`'!r})")
            indent = "    "
        else:
            lines.append("    if value is not None:")
            indent = "        "
        if check is not None:
            lines.append(f"{indent}if not {check}:")
            lines.append(f"{indent}    raise _mismatch({name!r}, hint{i}, value)")
        lines.append(f"{indent}values[{name!r}] = value")
    lines.append("    return row_type(**values)")
    exec("\n".join(lines), namespace)  # noqa: S102 (code generated from field names only)
    builder = _BUILDERS[row_type] = namespace["build"]
    return builder


def _build(row_type, row):
    """``row_type(**row)`` with each present column checked against its annotation
    (``int``, ``float``, ``str``, ``bool``, ``Any``, optionally ``Optional[...]``)."""
    if not isinstance(row, dict):
        raise ValueError(f"expected an object, found {to_json(row).decode()}")
    return _builder(row_type)(row)


class Record:
    """A record to publish, built with chained calls:
    ``Record.to("cdm.customer").json_key({"id": 7}).json_value(row).header("cdm.schema", "v1")``.
    Without a value it is a tombstone."""

    __slots__ = ("topic", "key", "value", "headers", "error")

    def __init__(self, topic: str):
        self.topic = topic
        self.key = None
        self.value = None
        self.headers = []
        self.error = None

    @classmethod
    def to(cls, topic: str) -> "Record":
        """A record for ``topic`` with no key, no value and no headers."""
        return cls(topic)

    def raw_key(self, key) -> "Record":
        """Sets the key to raw bytes or text; ``None`` clears it."""
        self.key = key.encode() if isinstance(key, str) else key
        return self

    def json_key(self, key) -> "Record":
        """Sets the key to ``key`` serialised as JSON."""
        self.key = self._serialise("key", key)
        return self

    def raw_value(self, value) -> "Record":
        """Sets the value to raw bytes or text."""
        self.value = value.encode() if isinstance(value, str) else value
        return self

    def json_value(self, value) -> "Record":
        """Sets the value to ``value`` serialised as JSON."""
        self.value = self._serialise("value", value)
        return self

    def tombstone(self) -> "Record":
        """Makes the record a tombstone (no value), for deletes on compacted topics."""
        self.value = None
        return self

    def header(self, key: str, value) -> "Record":
        """Appends a header (value text or bytes)."""
        self.headers.append((key, value.encode() if isinstance(value, str) else value))
        return self

    def _serialise(self, what, value):
        try:
            return to_json(value)
        except (TypeError, ValueError) as e:
            if self.error is None:
                self.error = f"{what} of record for {self.topic}: {e}"
            return None


def transform(function=None, *, init=None, config=None):
    """Registers the plugin's transform function (``@transform``,
    ``@transform(init=check)`` or ``@transform(config=Settings)``); the build exports it as
    the component's ``transform``."""

    def register(f):
        global _plugin
        _plugin = (f, init, config)
        return f

    return register(function) if function is not None else register


_plugin = None


def _init(pairs) -> None:
    """The WIT ``init``: stores the configuration, parses the typed settings (if
    declared), then runs the plugin's check."""
    global _config, _settings
    _config = Config(pairs)
    if _plugin is None:
        raise RuntimeError("no function is registered with @sluice_sdk.transform")
    if _plugin[2] is not None:
        _settings = parse_settings(_config.pairs, _plugin[2])
    check = _plugin[1]
    if check is not None:
        check(_config)


def _transform_packed(data: bytes) -> bytes:
    """The WIT ``transform-packed``: the function once per event of the packed batch
    ``data``, in order; the outcomes packed (``wit/packed.wit``)."""
    version, count, stride, _headers = _PREAMBLE.unpack_from(data, 0)
    if version != 1 or stride < _EVENT_WORDS:
        raise RuntimeError(f"packed batch of version {version} with {stride} words per event")
    function = _plugin[0]
    if _plugin[2] is not None:
        typed = _settings

        def call(event):
            return function(event, typed)
    else:
        call = function
    stride *= 4
    batch = _Batch(data, 16 + count * stride)
    unpack = _EVENT.unpack_from
    out = bytearray(_TWO_WORDS(1, count))
    for at in range(16, 16 + count * stride, stride):
        try:
            result = call(ChangeEvent(batch, unpack(data, at)))
            if result is None:
                result = ()
            elif isinstance(result, Record):
                result = (result,)
            for record in result:
                if record.error is not None:
                    raise Reject(record.error, "serialize")
        except Reject as reject:
            _write_rejection(out, reject)
            continue
        except Exception:
            import traceback

            # Like a Rust panic: the host names the last error line as the trap's reason.
            log("error", "plugin raised: " + traceback.format_exc())
            raise
        _write_records(out, result)
    return bytes(out)


def _write_bytes(out: bytearray, value) -> None:
    """A length and the bytes, or the ``none`` marker."""
    if value is None:
        out += _NONE_WORD
    else:
        out += _WORD(len(value))
        out += value


def _write_records(out: bytearray, records) -> None:
    records = list(records)
    out += _TWO_WORDS(0, len(records))
    for record in records:
        topic = record.topic.encode()
        out += _WORD(len(topic))
        out += topic
        key, value, headers = record.key, record.value, record.headers
        if key is None:
            out += _NONE_WORD
        else:
            out += _WORD(len(key))
            out += key
        if value is None:
            out += _NONE_WORD
        else:
            out += _WORD(len(value))
            out += value
        out += _WORD(len(headers))
        for key, value in headers:
            key = key.encode()
            out += _WORD(len(key))
            out += key
            _write_bytes(out, value)


def _write_rejection(out: bytearray, reject: Reject) -> None:
    reason = str(reject.reason).encode()
    out += _WORD(1)
    out += _WORD(len(reason))
    out += reason
    _write_bytes(out, None if reject.code is None else str(reject.code).encode())
