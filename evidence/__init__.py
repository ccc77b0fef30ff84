"""evidence-locker's domain core: cases, items, custody log, blob store and bundles.

Nothing here speaks HTTP or drives a browser; `api`, `capture` and `legal_forms` build on it.
"""

__version__ = "0.1.0"
