"""Makes ocr.py importable by its module name, as when it runs as a script."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
