from __future__ import annotations

import subprocess
import sys


def test_data_package_does_not_import_modalities():
    code = "import sys, multibyte.data; print('modalities' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
