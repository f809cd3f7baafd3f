"""What import isolation costs a runtime process forked from a zygote-like template.

A template imports what the zygote imports (``zygote.preload()``), prepares the
Lambda-provided directory and freezes its objects; then, interleaved:

* baseline — fork, the child exits at once, parent waits (the fork's own cost);
* snapshot — the same, the child runs ``isolation.isolate()`` first, with the template's
             ``isolation.snapshot()`` (what klambda does);
* full     — the same without a snapshot (the child classifies every module itself).

Prints the in-child time of ``isolate()`` and the fork round trip with ratios against the
baseline. Usage: python bench/runtime_isolation.py [-n 200]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time


def once(mode: str, provided: list[str]) -> tuple[float, float]:
    from klambda_runtime.pyruntime import isolation

    read_fd, write_fd = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        t = time.perf_counter()
        if mode != "baseline":
            isolation.isolate(front=["/nonexistent-task-root"], provided=provided)
        os.write(write_fd, f"{time.perf_counter() - t:.9f}".encode())
        os._exit(0)
    os.close(write_fd)
    inner = float(os.read(read_fd, 64))
    os.close(read_fd)
    os.waitpid(pid, 0)
    return time.perf_counter() - t0, inner


def main(n: int) -> None:
    from klambda_runtime import lambda_libs, zygote
    from klambda_runtime.pyruntime import isolation

    zygote.preload()
    with tempfile.TemporaryDirectory() as cache:
        provided_dir = lambda_libs.prepare(path=sys.path, cache_dir=cache)
        provided = [provided_dir] if provided_dir else []
        gc.collect()
        gc.freeze()
        rows: dict[str, list[tuple[float, float]]] = {"baseline": [], "snapshot": [], "full": []}
        for _ in range(n):
            for mode, samples in rows.items():
                if mode == "snapshot":
                    isolation.snapshot()
                elif mode == "full":
                    isolation._snapshot = None  # the benchmark's own switch
                samples.append(once(mode, provided))
    base = statistics.median(t for t, _ in rows["baseline"]) * 1000
    print(
        f"isolation in a fork of a preloaded template, {n} samples each "
        f"({len(sys.modules)} modules loaded in the template)"
    )
    for mode, samples in rows.items():
        total = statistics.median(t for t, _ in samples) * 1000
        inner = statistics.median(i for _, i in samples) * 1000
        ratio = "   (baseline)" if mode == "baseline" else f"{total / base:5.2f}x baseline"
        print(f"{mode:<9} fork round trip {total:6.2f} ms   isolate() {inner:5.2f} ms   {ratio}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200)
    main(parser.parse_args().n)
