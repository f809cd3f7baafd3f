"""Build a klambda Layer from packages installed in this interpreter.

Copies each named top-level package or module (as found by this interpreter) under
``python/`` of a zip archive - the layout Lambda's Python runtimes import from /opt - and
writes a Layer manifest that ships the archive by ``url: file://...`` with its sha256.

    python examples/compat/build_layer.py --name powertools --out /tmp/layers \\
        aws_lambda_powertools jmespath typing_extensions
    klambda apply -f /tmp/layers/powertools.yaml -f examples/compat/powertools.yaml

Only pure-Python packages make sense in a layer built this way (the interpreter that runs
the functions is klambda's). The archive is deterministic: same files, same sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

# every layer this suite uses: name -> the packages it carries (pure Python only)
LAYERS: dict[str, tuple[str, ...]] = {
    "powertools": ("aws_lambda_powertools", "jmespath", "typing_extensions"),
    "asgi": ("mangum", "starlette", "anyio", "idna", "typing_extensions"),
}
FIXED_TIME = (2024, 1, 1, 0, 0, 0)


class LayerBuildError(Exception):
    """A package to put in a layer cannot be found or is not pure Python."""


def package_files(name: str) -> Iterator[tuple[Path, str]]:
    """(source file, path inside the archive) for one importable package or module."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        raise LayerBuildError(f"{name} is not importable by {sys.executable}: pip install it "
                              "into this interpreter first")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        root = origin.parent
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                if path.suffix in (".so", ".pyd"):
                    raise LayerBuildError(f"{name} has native code ({path.name}); build that "
                                          "layer on the target platform instead")
                yield path, f"python/{name}/{path.relative_to(root).as_posix()}"
    else:
        if origin.suffix != ".py":
            raise LayerBuildError(f"{name} is not a pure-Python module ({origin.name})")
        yield origin, f"python/{origin.name}"


def build_zip(packages: Sequence[str], target: Path) -> str:
    """Write the layer archive; return its hex sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        seen: set[str] = set()
        for name in dict.fromkeys(packages):
            for source, arcname in package_files(name):
                if arcname in seen:
                    continue
                seen.add(arcname)
                info = zipfile.ZipInfo(arcname, date_time=FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, source.read_bytes())
    return hashlib.sha256(target.read_bytes()).hexdigest()


def layer_manifest(name: str, *, archive: Path, sha256: str, description: str) -> str:
    return (
        "apiVersion: klambda.io/v1alpha1\n"
        "kind: Layer\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  description: {description!r}\n"
        "  content:\n"
        f"    url: {{location: '{archive.resolve().as_uri()}', sha256: {sha256}}}\n"
    )


def build_layer(name: str, packages: Sequence[str], out_dir: Path) -> Path:
    """Build ``<out>/<name>.zip`` and ``<out>/<name>.yaml``; return the manifest's path."""
    archive = out_dir / f"{name}.zip"
    digest = build_zip(packages, archive)
    manifest = out_dir / f"{name}.yaml"
    manifest.write_text(layer_manifest(name, archive=archive, sha256=digest,
                                       description="packages: " + " ".join(packages)))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a klambda Layer from installed packages.")
    parser.add_argument("--name", required=True, help=f"layer name (known: {', '.join(LAYERS)})")
    parser.add_argument("--out", required=True, type=Path, help="directory for .zip and .yaml")
    parser.add_argument("packages", nargs="*",
                        help="importable packages/modules (default: the known layer's list)")
    args = parser.parse_args(argv)
    packages = args.packages or LAYERS.get(args.name)
    if not packages:
        parser.error(f"name the packages for layer {args.name!r}")
    try:
        print(build_layer(args.name, packages, args.out))
    except LayerBuildError as exc:
        print(f"build_layer: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
