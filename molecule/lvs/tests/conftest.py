"""The scenario's support module (../vmlab.py) is shared with side_effect's script."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
