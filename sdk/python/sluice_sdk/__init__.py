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
import json
import sys
import types
import typing

from . import debezium

__all__ = [
    "ChangeEvent",
    "Config",
    "Record",
    "Reject",
    "config",
    "debezium",
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


def to_json(value) -> bytes:
    """JSON bytes of ``value`` as the Rust SDK (serde_json) writes them: compact, keys in
    insertion order, non-ASCII text unescaped."""
    return _ENCODE(value).encode()


_SNAPSHOT_NONE = "NONE"
OP_CODES = {"CREATE": "c", "UPDATE": "u", "DELETE": "d", "READ": "r", "TRUNCATE": "t", "MESSAGE": "m"}
_OP_NAMES = {name: name.lower() for name in OP_CODES}
# WIT enums and variants arrive as Python `Enum` members; their `_name_` is a plain
# attribute, where `.name` and hashing a member run Python code of the `enum` module on
# every event.


class ChangeEvent:
    """One change event, decoded from its Debezium envelope by the host. Row images arrive
    as JSON text and are parsed only when asked for, into a dataclass the plugin names:
    ``event.after(Customer)``."""

    __slots__ = ("wit",)

    def __init__(self, wit):
        self.wit = wit

    @property
    def op(self) -> str:
        """``create``, ``update``, ``delete``, ``read``, ``truncate`` or ``message``."""
        return _OP_NAMES[self.wit.op._name_]

    @property
    def op_code(self) -> str:
        """Debezium's one-letter code of the operation (``c``, ``u``, ``d``, ...)."""
        return OP_CODES[self.wit.op._name_]

    @property
    def source(self):
        """The source block (``connector``, ``name``, ``db``, ``schema``, ``table``,
        ``change_lsn``, ``commit_lsn``, ``event_serial_no``, ``snapshot``, ``ts_ms``)."""
        return self.wit.source

    @property
    def is_snapshot(self) -> bool:
        """Whether the event belongs to a snapshot (any marker but ``none``)."""
        return self.wit.source.snapshot._name_ != _SNAPSHOT_NONE

    def qualified_table(self) -> str:
        """``schema.table`` (or just ``table`` when the database has no schemas)."""
        source = self.wit.source
        return source.table if source.schema is None else f"{source.schema}.{source.table}"

    @property
    def ts_ms(self) -> typing.Optional[int]:
        """When the connector processed the event (envelope ``ts_ms``)."""
        return self.wit.ts_ms

    @property
    def transaction(self):
        """The transaction block (``id``, ``total_order``, ``data_collection_order``)."""
        return self.wit.transaction

    @property
    def origin(self):
        """Where the event was read from (``topic``, ``partition``, ``offset``)."""
        return self.wit.origin

    @property
    def value(self) -> bytes:
        """The record value exactly as received (the whole Debezium envelope)."""
        return self.wit.value

    @property
    def key_bytes(self) -> typing.Optional[bytes]:
        """The record key bytes as received."""
        return self.wit.key

    @property
    def headers(self):
        """The headers as received (``key``, ``value`` bytes or ``None``)."""
        return self.wit.headers

    def header(self, key: str) -> typing.Optional[bytes]:
        """The value of the first header named ``key``."""
        for h in self.wit.headers:
            if h.key == key:
                return h.value
        return None

    def _slice(self, span) -> typing.Optional[str]:
        if span is None:
            return None
        return self.wit.value[span.start : span.start + span.len].decode()

    def before_json(self) -> typing.Optional[str]:
        """The ``before`` image as JSON text."""
        return self._slice(self.wit.before)

    def after_json(self) -> typing.Optional[str]:
        """The ``after`` image as JSON text."""
        return self._slice(self.wit.after)

    def value_schema(self) -> typing.Optional[str]:
        """The Kafka Connect value schema as JSON text, when the event carried one."""
        return self._slice(self.wit.value_schema)

    def before(self, row_type=None):
        """The ``before`` image parsed (into ``row_type``, a dataclass, when given); raises a
        ``Reject`` when absent or not of that type."""
        return _parse_row("before", self.before_json(), row_type)

    def after(self, row_type=None):
        """The ``after`` image, parsed like ``before``."""
        return _parse_row("after", self.after_json(), row_type)

    def row(self, row_type=None):
        """The row as it is now: ``after`` for creates, updates and reads, ``before`` for
        deletes."""
        return self.before(row_type) if self.wit.op._name_ == "DELETE" else self.after(row_type)

    def key(self):
        """The key, parsed. Accepts both Debezium key forms: the bare primary-key object
        and ``{"schema": ..., "payload": ...}``."""
        if self.wit.key is None:
            raise Reject("the event has no key", "missing-key")
        try:
            value = json.loads(self.wit.key)
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


def _outcomes(events, records_outcome, rejected_outcome):
    """One outcome per event, in order, built by the two constructors given."""
    function = _plugin[0]
    if _plugin[2] is not None:
        typed = _settings

        def call(event):
            return function(event, typed)
    else:
        call = function
    outcomes = []
    for wit in events:
        try:
            result = call(ChangeEvent(wit))
            if result is None:
                result = []
            elif isinstance(result, Record):
                result = [result]
            for record in result:
                if record.error is not None:
                    raise Reject(record.error, "serialize")
            outcomes.append(records_outcome(result))
        except Reject as reject:
            outcomes.append(rejected_outcome(reject))
        except Exception:
            import traceback

            # Like a Rust panic: the host names the last error line as the trap's reason.
            log("error", "plugin raised: " + traceback.format_exc())
            raise
    return outcomes
