"""Time clviz.load_backbone() for the bundled tiny CLIP (imports excluded, then included).

python benchmarks/load_backbone.py
"""

from __future__ import annotations

import subprocess
import sys
import time

if __name__ == "__main__":
    started = time.perf_counter()
    from clviz import load_backbone

    imported = time.perf_counter()
    load_backbone()
    first = time.perf_counter()
    load_backbone()
    second = time.perf_counter()
    print(f"import clviz: {imported - started:.2f} s")
    print(
        f"load_backbone() first call: {first - imported:.2f} s, second call: {second - first:.2f} s"
    )
    cold = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import clviz; clviz.load_backbone()"], check=True)
    print(f"fresh process, import + load: {time.perf_counter() - cold:.2f} s")
