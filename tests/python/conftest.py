"""The fixtures live in tests/conftest.py, shared with tests/claude-code.

pytest reads tests/conftest.py only when its rootdir is tests/ or above (as in
`pytest tests/python tests/claude-code`); a run rooted lower, such as `pytest tests/python`,
loads it from here instead.
"""

import importlib.util
import sys
from pathlib import Path

if "tollgate_shared_fixtures" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "tollgate_shared_fixtures", Path(__file__).resolve().parents[1] / "conftest.py"
    )
    _shared = importlib.util.module_from_spec(_spec)
    sys.modules["tollgate_shared_fixtures"] = _shared
    _spec.loader.exec_module(_shared)
    globals().update({k: v for k, v in vars(_shared).items() if not k.startswith("__")})
