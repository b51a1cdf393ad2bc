"""The `imagespec` command line.

Exit codes: 0 success; 1 a spec, file or registry error (the message says which), or for `exists`
an image that is missing or unknown; 2 bad usage (and, for now, `build` without `--dry-run`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagespec import _core
from imagespec._spec import ImageSpec

EXIT_ERROR = 1
EXIT_USAGE = 2


def _load_module_specs(path: Path) -> list[tuple[str, ImageSpec]]:
    """The module-level ImageSpec values of a Python file, imported as `python FILE` would."""
    import importlib.util

    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    if module_spec is None or module_spec.loader is None:
        raise _core.SpecError(f"{path}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[path.stem] = module
    try:
        module_spec.loader.exec_module(module)
    except _core.ImageSpecError:
        raise
    except BaseException as e:
        raise _core.SpecError(f"{path}: importing it failed: {type(e).__name__}: {e}") from e
    found: dict[ImageSpec, str] = {}
    for name, value in vars(module).items():
        if isinstance(value, ImageSpec) and value not in found:
            found[value] = name
    return [(name, spec) for spec, name in found.items()]


def load_specs(target: str) -> list[tuple[str, ImageSpec]]:
    """Specs named by a CLI argument: a YAML spec file or a Python file."""
    path = Path(target)
    if not path.is_file():
        raise _core.SpecError(f"{target}: no such file; give a spec YAML file or a Python file")
    if path.suffix == ".py":
        specs = _load_module_specs(path)
        if not specs:
            raise _core.SpecError(f"{target}: defines no ImageSpec at module level")
        return specs
    return [(path.stem, ImageSpec.from_yaml(path))]


def _cmd_tag(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for label, spec in load_specs(args.target):
        rows.append({"name": label, "image": spec.image_name(), "tag": spec.tag, "id": spec.id})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(row["image"])
    return 0


def _cmd_exists(args: argparse.Namespace) -> int:
    from imagespec._registry import check

    results = check(
        args.images,
        platforms=args.platform or None,
        registry_config=args.registry_config,
        insecure=args.insecure or None,
        use_cache=not args.no_cache,
        timeout=args.timeout,
    )
    width = max(len(r.reference) for r in results)
    for r in results:
        detail = r.digest if r.status == "exists" else r.reason
        print(f"{r.status:<8} {r.reference:<{width}}  {detail or ''}".rstrip())
    return 0 if all(r.status == "exists" for r in results) else EXIT_ERROR


def _with_bases(specs: list[tuple[str, ImageSpec]]) -> list[tuple[str, ImageSpec]]:
    """The specs and their base specs, each base before the images built on it, each image once."""
    out: list[tuple[str, ImageSpec]] = []
    seen: set[str] = set()

    def visit(label: str, spec: ImageSpec) -> None:
        base = spec.base_image
        if isinstance(base, ImageSpec):
            visit(f"{label}.base_image", base)
        image = spec.image_name()
        if image not in seen:
            seen.add(image)
            out.append((label, spec))

    for label, spec in specs:
        visit(label, spec)
    return out


def _cmd_build(args: argparse.Namespace) -> int:
    if not args.dry_run:
        print(
            "imagespec: building needs an engine: not available yet "
            "(use --dry-run to see what would be built)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from imagespec._build import plan_context

    rows: list[dict[str, Any]] = []
    for label, spec in _with_bases(load_specs(args.target)):
        plan = plan_context(
            spec,
            imagespec_wheel=args.wheel,
            ca_bundle=args.ca_bundle,
            buildkit=not args.no_buildkit,
            engine=args.engine,
        )
        rows.append({"name": label, **plan})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for i, row in enumerate(rows):
        if i:
            print()
        print(f"==> {row['name']}: {row['image']}")
        print("--- Dockerfile")
        print(row["dockerfile_text"], end="")
        print(f"--- context files ({len(row['files'])})")
        for f in row["files"]:
            print(f)
        if row["secrets"]:
            print("--- build secrets")
            for s in row["secrets"]:
                print(s)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagespec",
        description="Declare container images in Python; tag them by content, build only what is missing.",
    )
    parser.add_argument("--version", action="version", version=f"imagespec {_core.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    tag = commands.add_parser(
        "tag",
        help="print the full image name (registry/name:tag) of each spec",
        description="Print the full image name of a spec YAML file, or of each ImageSpec in a Python file.",
    )
    tag.add_argument("target", metavar="SPEC.yaml|FILE.py")
    tag.add_argument("--json", action="store_true", help="print name, image, tag and id as JSON")
    tag.set_defaults(func=_cmd_tag)
    exists = commands.add_parser(
        "exists",
        help="say whether images exist in their registries",
        description="Print one line per image (exists/missing/unknown, then the digest or the reason); "
        "exit 1 when any image is not known to exist.",
    )
    exists.add_argument("images", nargs="+", metavar="IMAGE", help="e.g. localhost:5000/app:tag")
    exists.add_argument(
        "--platform", action="append", metavar="OS/ARCH", help="a platform the image must have"
    )
    exists.add_argument("--registry-config", metavar="FILE", help="a docker config.json with credentials")
    exists.add_argument("--insecure", action="append", metavar="REGISTRY", help="allow plain HTTP to it")
    exists.add_argument("--no-cache", action="store_true", help="ask the registry even if seen recently")
    exists.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (10)")
    exists.set_defaults(func=_cmd_exists)
    build = commands.add_parser(
        "build",
        help="build the images of a spec file or Python file (for now: --dry-run)",
        description="With --dry-run, print for each image (base images first) its Dockerfile, the files "
        "of its build context and the build secrets it needs; nothing is written or built.",
    )
    build.add_argument("target", metavar="SPEC.yaml|FILE.py")
    build.add_argument("--dry-run", action="store_true", help="print the Dockerfiles and context files")
    build.add_argument("--json", action="store_true", help="print the dry run as JSON")
    build.add_argument("--wheel", metavar="FILE", help="install this imagespec wheel instead of the index's")
    build.add_argument(
        "--ca-bundle",
        metavar="PATH",
        default=os.environ.get("IMAGESPEC_CA_BUNDLE") or None,
        help="extra CA certificates for install steps: a PEM file or a folder ($IMAGESPEC_CA_BUNDLE)",
    )
    build.add_argument("--no-buildkit", action="store_true", help="write for a builder without BuildKit")
    build.add_argument("--engine", default="docker", help="engine name for the image label (docker)")
    build.set_defaults(func=_cmd_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except _core.ImageSpecError as e:
        print(f"imagespec: error: {e}", file=sys.stderr)
        return EXIT_ERROR
