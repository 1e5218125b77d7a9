"""The component's ``sluice:transform/transform`` export for a plugin registered with
``@sluice_sdk.transform``. Imported only inside a component: the entry module that
``sluice plugin build`` generates imports the plugin module, then this class, which
componentize-py finds by its name (the WIT interface ``transform`` → ``Transform``).
"""

from wit_world import exports
from wit_world.imports import types
from componentize_py_types import Err

import sluice_sdk


def _records(records):
    return types.EventOutcome_Records(
        [
            types.OutputRecord(
                r.topic, r.key, r.value, [types.Header(k, v) for k, v in r.headers]
            )
            for r in records
        ]
    )


def _rejected(reject):
    return types.EventOutcome_Rejected(types.Rejection(reject.reason, reject.code))


class Transform(exports.Transform):
    """Calls the registered function once per event; see ``sluice_sdk``."""

    def init(self, config):
        try:
            sluice_sdk._init(config)
        except Exception as e:
            raise Err(str(e)) from None

    def transform_batch(self, events):
        return sluice_sdk._outcomes(events, _records, _rejected)
