"""scripts/calibrate_stats.py, importable by the tests (its simulated worlds and cells)."""

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "scripts" / "calibrate_stats.py"
_spec = importlib.util.spec_from_file_location("calibrate_stats", _path)
_module = importlib.util.module_from_spec(_spec)
sys.modules["calibrate_stats"] = _module
_spec.loader.exec_module(_module)

world, reevaluated, cell = _module.world, _module.reevaluated, _module.cell
