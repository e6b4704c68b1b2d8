"""logitd for Python: read a cache directory (:mod:`logitd.cache`, needs numpy, zstandard, lz4,
xxhash), talk to a running daemon (:mod:`logitd.client`, standard library only), replay a cache in
the Swift trainer's order (:mod:`logitd.replay`) and train from it with PyTorch (:mod:`logitd.torch`,
the ``[torch]`` extra).

Importing ``logitd`` itself imports neither, so the standard-library client keeps working on a
Python without numpy."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
