"""Read a logitd cache directory (catalog + shards) from Python, read-only.

>>> from logitd.cache import Cache
>>> cache = Cache("/data/kd-cache")
>>> [d.name for d in cache.datasets()]
>>> for r in cache.sequences("netdocs"):
...     r.key, r.tokens, r.offsets, r.ids, r.logprobs, r.gold_forced, r.loss_mask

Formats: schema/SHARD_FORMAT.md, schema/catalog.sql, schema/CATALOG_FILE.md. Command line:
``python -m logitd.cache {datasets,export,bench} CACHE …``.
"""

from .block import DecodedBlock
from .content_hash import content_hash
from .errors import CacheError, CatalogError, DatasetNotFound, ShardError
from .layout import Provenance
from .models import Coverage, Dataset, Record, ShardInfo
from .reader import Cache
from .shard import Shard

__all__ = [
    "Cache", "CacheError", "CatalogError", "Coverage", "Dataset", "DatasetNotFound", "DecodedBlock", "Provenance",
    "Record", "Shard", "ShardError", "ShardInfo", "content_hash",
]
