"""Online stores (SQLite, Redis, DynamoDB), materialization from Delta and the read path.

See :mod:`featurelake.online.encoding` for the key/value layout and :mod:`featurelake.online.materialize`
for the semantics (PIT value at the as-of time, conditional writes, incremental from change data).
"""

from featurelake.online.backends import open_store
from featurelake.online.client import OnlineClient, get_online_features
from featurelake.online.store import OnlineStore, StoreConfig

__all__ = ["OnlineClient", "OnlineStore", "StoreConfig", "get_online_features", "open_store"]
