"""The one place tempdistill keeps what it makes once and reuses: trained teachers and generated
data, whatever the working directory."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "TEMPDISTILL_CACHE"


def cache_dir() -> Path:
    """Where trained teachers are kept: $TEMPDISTILL_CACHE, else the user's cache directory."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve() / "teachers"
    user_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(user_cache).expanduser().resolve() / "tempdistill" / "teachers"
