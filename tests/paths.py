"""Where the tests find the repository and the shared published data (beside the clone, as in CI)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXTERNAL = SHARED / "data" / "external"

needs_shared = pytest.mark.skipif(not EXTERNAL.is_dir(), reason=f"published data not found at {EXTERNAL}")
