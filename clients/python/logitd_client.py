"""A client of logitd for Python teachers — kept under this name for scripts that import
``logitd_client`` from a plain checkout (``example_teacher.py``, the Swift test suite). The code
lives in :mod:`logitd.client` (the ``logitd`` package beside this file; standard library only,
so this works on a Python without numpy)."""

from logitd.client import (  # noqa: F401  (re-exported)
    DTYPES,
    FLAG_ALIGNED_ROWS,
    FLAG_LOSS_MASK,
    MAGIC,
    MODE_LOGITS,
    MODE_SETS,
    ROW_ALIGNMENT,
    VERSION,
    Client,
    LogitdError,
    SharedSlots,
    encode_logits,
    encode_sets,
)

__all__ = ["DTYPES", "FLAG_ALIGNED_ROWS", "FLAG_LOSS_MASK", "MAGIC", "MODE_LOGITS", "MODE_SETS", "ROW_ALIGNMENT",
           "VERSION", "Client", "LogitdError", "SharedSlots", "encode_logits", "encode_sets"]
