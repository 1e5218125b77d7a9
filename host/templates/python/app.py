"""``{{name}}``: a sluice plugin. It publishes each row's id, table and operation to
``example.out``, keyed by the id, and a tombstone for a delete. Edit ``transform`` to map
your rows; ``sluice plugin test`` checks it against ``samples/`` (see README.md).
"""

from dataclasses import dataclass

import sluice_sdk
from sluice_sdk import Record


@dataclass
class Row:
    """The columns this plugin reads; the others are ignored."""

    id: int


@sluice_sdk.transform
def transform(event):
    # Neither image: nothing to publish.
    if event.op in ("truncate", "message"):
        return []
    row = event.row(Row)
    key = {"id": row.id}
    if event.op == "delete":
        return [Record.to("example.out").json_key(key).tombstone()]
    sluice_sdk.log("debug", f"row {row.id}")
    summary = {"id": row.id, "table": event.qualified_table(), "op": event.op_code}
    return [Record.to("example.out").json_key(key).json_value(summary)]
