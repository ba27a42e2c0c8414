"""The fixtures live in tests/conftest.py, shared with tests/python.

Run on its own (`pytest tests/claude-code`), pytest does not read tests/conftest.py; the loader in
tests/python/conftest.py then brings its fixtures here too.
"""

import runpy
from pathlib import Path

globals().update(
    {
        k: v
        for k, v in runpy.run_path(
            str(Path(__file__).resolve().parents[1] / "python" / "conftest.py")
        ).items()
        if not k.startswith("__")
    }
)
