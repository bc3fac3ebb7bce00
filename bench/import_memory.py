"""Memory each package takes when a process loads the app: what `import wsgi` costs, by package.

    python bench/import_memory.py [module] [--depth N] [--top N]

Every module's load (unmarshalling its code and running its body) is timed with tracemalloc;
the bytes a module keeps, minus what the modules it imports keep, are added to its top-level
package (`app.<area>` for the app's own). It counts Python objects only (not glibc's free
lists or shared libraries), so the total is below the RSS the same import shows; the RSS of
the process before and after is printed beside it. Run it with the settings of the process
to profile (SLIPWAY_ENV, DATABASE_URL: the MariaDB driver loads only for a MariaDB URL).
"""

from __future__ import annotations

import argparse
import importlib
import importlib._bootstrap_external as loaders
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
kept: dict[str, int] = {}
_stack: list[int] = []


def rss_mb() -> float:
    """This process's RSS in MB."""
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _measured_exec(original):  # type: ignore[no-untyped-def]
    def exec_module(self, module: ModuleType) -> None:  # type: ignore[no-untyped-def]
        before = tracemalloc.get_traced_memory()[0]
        _stack.append(0)
        try:
            original(self, module)
        finally:
            total = tracemalloc.get_traced_memory()[0] - before
            inner = _stack.pop()
            kept[module.__name__] = kept.get(module.__name__, 0) + total - inner
            if _stack:
                _stack[-1] += total

    return exec_module


def main() -> None:
    """Import the module with every load measured, then print the biggest packages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", nargs="?", default="wsgi")
    parser.add_argument("--depth", type=int, default=1, help="package name parts to group by")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    # Code objects are built while the loader runs the module, inside exec_module: one hook sees both.
    loaders._LoaderBasics.exec_module = _measured_exec(loaders._LoaderBasics.exec_module)  # type: ignore[method-assign]
    start = rss_mb()
    tracemalloc.start()
    importlib.import_module(args.module)
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    groups: dict[str, int] = {}
    for name, size in kept.items():
        parts = name.split(".")
        key = ".".join(parts[: args.depth + (parts[0] == "app")])
        groups[key] = groups.get(key, 0) + size
    print(f"import {args.module}: {len(sys.modules)} modules, {traced / 1e6:.1f} MB of Python objects "
          f"(RSS {start:.1f} -> {rss_mb():.1f} MB, tracemalloc's own bookkeeping included)")
    for key, size in sorted(groups.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {size / 1e6:6.2f} MB  {key}")


if __name__ == "__main__":
    main()
