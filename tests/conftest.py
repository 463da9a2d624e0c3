"""Suite-wide settings. ``HYPOTHESIS_PROFILE=ci`` (set by .ci/run) makes property tests
derandomized, so CI is reproducible; run without it locally to keep exploring new examples."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
