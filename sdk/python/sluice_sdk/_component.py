"""The component's ``sluice:transform/transform-packed`` export for a plugin registered
with ``@sluice_sdk.transform``. Imported only inside a component: the entry module that
``sluice plugin build`` generates imports the plugin module, then this class, which
componentize-py finds by its name (the WIT interface ``transform-packed`` →
``TransformPacked``). The batch arrives as one ``bytes`` and the outcomes leave as one
(``wit/packed.wit``); ``sluice_sdk`` reads and writes them.
"""

from wit_world import exports
from componentize_py_types import Err

import sluice_sdk


class TransformPacked(exports.TransformPacked):
    """Calls the registered function once per event; see ``sluice_sdk``."""

    def init(self, config):
        try:
            sluice_sdk._init(config)
        except Exception as e:
            raise Err(str(e)) from None

    def transform_packed(self, batch):
        return sluice_sdk._transform_packed(batch)
