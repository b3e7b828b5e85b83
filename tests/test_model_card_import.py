"""The model card's `from rankvideo import VLMReranker` works, is this package's class, and imports no torch."""

from __future__ import annotations

import subprocess
import sys


def test_rankvideo_import_is_the_same_lazy_class() -> None:
    probe = (
        "import sys, rankvideo; assert 'torch' not in sys.modules; "
        "from rankvideo import VLMReranker; import rankvideo_cli; "
        "assert VLMReranker is rankvideo_cli.VLMReranker; print(VLMReranker.__name__, rankvideo.__version__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == "VLMReranker"
