"""The `imagespec` command line.

Exit codes: 0 success; 1 a spec, file or registry error (the message says which), for `exists` an
image that is missing or unknown, for `build` an image that failed, for `inspect` an image without
imagespec labels; 2 bad usage; 130 interrupted (Ctrl-C: running builds are stopped, nothing of
theirs is pushed, their temporary folders are removed).
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
EXIT_INTERRUPTED = 130


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


def _dry_run(args: argparse.Namespace) -> int:
    from imagespec._build import plan_context

    rows: list[dict[str, Any]] = []
    for label, spec in _with_bases(load_specs(args.target)):
        plan = plan_context(
            spec,
            imagespec_wheel=args.wheel,
            ca_bundle=args.ca_bundle,
            buildkit=not args.no_buildkit,
            engine=args.builder or "docker",
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


def _cmd_build(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args)
    from imagespec._engine import build
    from imagespec._progress import Progress, summary_table

    specs = [spec for _, spec in load_specs(args.target)]
    with Progress(verbose=args.verbose) as progress:
        report = build(
            specs,
            builder=args.builder,
            force_push=args.force_push,
            max_parallel=args.parallel,
            assume_present=True if args.assume_present else None,
            no_cache=args.no_cache,
            on_event=progress,
            imagespec_wheel=args.wheel,
            ca_bundle=args.ca_bundle,
            check=False,
        )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "image": r.image,
                        "name": r.name,
                        "id": r.id,
                        "outcome": r.outcome,
                        "builder": r.builder,
                        "reason": r.reason,
                        "seconds": round(r.seconds, 3),
                    }
                    for r in report
                ],
                indent=2,
            )
        )
    else:
        print(summary_table(report))
    return 0 if report.ok else EXIT_ERROR


def _diff_side(target: str, label: str) -> Any:
    """A spec file (YAML, FILE.py with one spec, FILE.py:VAR) or an image reference."""
    from imagespec._diff import Side

    path, sep, var = target.partition(".py:")
    if sep:
        specs = dict(load_specs(path + ".py"))
        if var not in specs:
            raise _core.SpecError(
                f"{path}.py defines no module-level ImageSpec named {var!r} ({', '.join(specs)})"
            )
        return Side.of_spec(specs[var], target)
    if Path(target).is_file():
        specs_in = load_specs(target)
        if len(specs_in) > 1:
            names = ", ".join(f"{target}:{n}" for n, _ in specs_in)
            raise _core.SpecError(f"{target} defines {len(specs_in)} specs; name one: {names}")
        return Side.of_spec(specs_in[0][1], target)
    return Side.of_image(target)


def _cmd_diff(args: argparse.Namespace) -> int:
    from imagespec._diff import compare

    result = compare(_diff_side(args.a, "a"), _diff_side(args.b, "b"))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.explain())
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from imagespec._inspect import inspect

    info = inspect(
        args.image,
        platform=args.platform,
        registry_config=args.registry_config,
        insecure=args.insecure or None,
        local=True if args.local else None,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "reference": info.reference,
                    "digest": info.digest,
                    "source": info.source,
                    "created": info.created,
                    "platform": info.platform,
                    "labels": info.labels,
                    "spec": info.spec,
                },
                indent=2,
            )
        )
        return 0
    print(f"image:    {info.reference}")
    print(f"digest:   {info.digest}")
    print(f"platform: {info.platform}")
    if not info.built_by_imagespec:
        print("not built by imagespec (no dev.imagespec.* labels)")
        return EXIT_ERROR
    for key in ("id", "tag", "recipe", "engine"):
        print(f"{key + ':':<9} {info.label(key)}")
    print("built from:")
    for key, value in sorted((info.spec or {}).items()):
        print(f"  {key}: {json.dumps(value)}")
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
        help="build the images of a spec file or Python file that are missing",
        description="Build every image of a spec YAML file, or every module-level ImageSpec of a Python file "
        "(base images first), that its registry lacks; push them. Progress goes to stderr, one line per "
        "image to stdout; exit 1 when any image failed. With --dry-run, print each image's Dockerfile, "
        "context files and build secrets instead; nothing is written or built.",
    )
    build.add_argument("target", metavar="SPEC.yaml|FILE.py")
    build.add_argument("--dry-run", action="store_true", help="print the Dockerfiles and context files")
    build.add_argument("--json", action="store_true", help="print the result (or the dry run) as JSON")
    build.add_argument(
        "--builder", metavar="NAME", help="build with this builder (docker, buildah, podman, ...)"
    )
    build.add_argument("--force-push", action="store_true", help="build and push even the images that exist")
    build.add_argument(
        "--assume-present",
        action="store_true",
        help="treat an image whose existence cannot be told as present (default: fail it)",
    )
    build.add_argument(
        "--parallel", type=int, metavar="N", help="builds at once (2, $IMAGESPEC_MAX_PARALLEL)"
    )
    build.add_argument("--no-cache", action="store_true", help="build every step again")
    build.add_argument("-v", "--verbose", action="store_true", help="print every engine step as a line")
    build.add_argument(
        "--wheel",
        metavar="FILE",
        default=os.environ.get("IMAGESPEC_WHEEL") or None,
        help="install this imagespec wheel in the images instead of the index's ($IMAGESPEC_WHEEL)",
    )
    build.add_argument(
        "--ca-bundle",
        metavar="PATH",
        default=os.environ.get("IMAGESPEC_CA_BUNDLE") or None,
        help="extra CA certificates for install steps: a PEM file or a folder ($IMAGESPEC_CA_BUNDLE)",
    )
    build.add_argument(
        "--no-buildkit", action="store_true", help="dry run: write for a builder without BuildKit"
    )
    build.set_defaults(func=_cmd_build)
    inspect = commands.add_parser(
        "inspect",
        help="show what an image was built from",
        description="Read an image's config (from its registry, or from the local Docker engine when "
        "the name has no registry host) and print the spec, id, tag, recipe and engine its imagespec "
        "labels record; exit 1 when it has none.",
    )
    inspect.add_argument("image", metavar="IMAGE")
    inspect.add_argument("--json", action="store_true", help="print the config's labels and the spec as JSON")
    inspect.add_argument("--platform", metavar="OS/ARCH", help="inside an index, this platform's image")
    inspect.add_argument("--registry-config", metavar="FILE", help="a docker config.json with credentials")
    inspect.add_argument("--insecure", action="append", metavar="REGISTRY", help="allow plain HTTP to it")
    inspect.add_argument("--local", action="store_true", help="read it from the local Docker engine")
    inspect.set_defaults(func=_cmd_inspect)
    diff = commands.add_parser(
        "diff",
        help="explain why two specs (or a spec and an image) have different tags",
        description="Compare two specs, or a spec and the spec an image was built from (its labels), and "
        "print every field, base image and file that makes their tags differ. A and B are each a spec "
        "YAML file, a Python file defining one ImageSpec, FILE.py:VARIABLE, or an image reference.",
    )
    diff.add_argument("a", metavar="A")
    diff.add_argument("b", metavar="B")
    diff.add_argument("--json", action="store_true", help="print the changes as JSON")
    diff.set_defaults(func=_cmd_diff)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except _core.ImageSpecError as e:
        print(f"imagespec: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("imagespec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
