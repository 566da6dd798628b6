"""Production packages (tansiq, services) must not need the test tooling: fixtures live under tests/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Imports every module of both packages in a fresh interpreter (this one already has pytest loaded),
# then reports which test-only packages came along.
PROBE = """
import importlib, pkgutil, sys
import services, tansiq
names = []
for package in (tansiq, services):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        names.append(module.name)
        importlib.import_module(module.name)
print(len(names))
print(" ".join(sorted(m for m in ("pytest", "_pytest", "aiosmtpd", "playwright") if m in sys.modules)))
"""


def test_no_production_module_imports_pytest():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    count, loaded = (result.stdout.splitlines() + ["", ""])[:2]
    assert int(count) > 40, "the walk found too few modules to mean anything"
    assert loaded == "", f"importing tansiq.* and services.* loaded test tooling: {loaded}"


def test_no_testing_module_left_in_production_packages():
    leftovers = [str(p.relative_to(ROOT)) for package in ("tansiq", "services")
                 for p in (ROOT / package).rglob("*.py") if p.name in ("testing.py", "conftest.py")]
    assert leftovers == [], f"test fixtures belong under tests/: {leftovers}"
