"""The `imagespec` command line.

Exit codes: 0 success; 1 a spec, file or registry error (the message says which), for `exists` an
image that is missing or unknown, for `build` an image that failed, for `inspect` an image without
imagespec labels, for `run` a task that raised or failed in its container; 2 bad usage (including
an unknown ENTITY, a bad input, an `--image` no task uses); 130 interrupted (Ctrl-C: running builds
are stopped, nothing of theirs is pushed, their temporary folders are removed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from imagespec import _core, _pyflyte
from imagespec._spec import ImageSpec
from imagespec._targets import (
    Targets,
    UsageError,
    apply_image_options,
    build_targets,
    entity_named,
    import_file,
    load_specs,
    retargeted,
    specs_of_module,
)

if TYPE_CHECKING:
    from imagespec._flytekit_tasks import FlytekitTask
    from imagespec._task import Task, Workflow

    AnyTask = Union[Task, FlytekitTask]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _input_value(name: str, text: str, hint: Any) -> Any:
    import typing

    origin = typing.get_origin(hint)
    if origin is typing.Union:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return _input_value(name, text, options[0])
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("not true or false")
        if hint in (int, float, str):
            return hint(text)
        if hint in (list, dict, tuple) or origin in (list, dict, tuple):
            value = json.loads(text)
            return tuple(value) if (hint is tuple or origin is tuple) and isinstance(value, list) else value
    except ValueError as e:
        kind = getattr(hint, "__name__", hint)
        raise UsageError(f"input --{name}: {text!r} is not a {kind} ({e})") from None
    if hint is None or hint is Any:
        return text
    raise UsageError(f"input --{name}: a {hint} cannot be given on the command line")


def _inputs(entity: Task | Workflow, words: Sequence[str]) -> dict[str, Any]:
    """`--key value` words as the entity's keyword arguments, by its type hints."""
    import inspect
    import typing

    params = inspect.signature(entity.fn).parameters
    try:
        hints = typing.get_type_hints(entity.fn)
    except Exception:
        hints = {}

    def describe() -> str:
        shown = [f"--{p} ({getattr(hints.get(p), '__name__', 'str')})" for p in params]
        return f"inputs of {entity.fn.__name__}: {', '.join(shown) or 'none'}"

    out: dict[str, Any] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--") or len(word) == 2:
            raise UsageError(f"unexpected {word!r}: give inputs as --name value ({describe()})")
        key, sep, text = word[2:].partition("=")
        key = key.replace("-", "_")
        if not sep:
            if i + 1 >= len(words):
                raise UsageError(f"input --{key} has no value")
            text = words[i + 1]
            i += 1
        i += 1
        if key not in params:
            raise UsageError(f"unknown input --{key} ({describe()})")
        out[key] = _input_value(key, text, hints.get(key))
    missing = [p for p, v in params.items() if p not in out and v.default is inspect.Parameter.empty]
    if missing:
        raise UsageError(f"missing input {', '.join('--' + m for m in missing)} ({describe()})")
    return out


def _show_result(result: Any) -> None:
    if result is not None:
        print(result if isinstance(result, str) else repr(result))


def _cmd_run(args: argparse.Namespace, words: Sequence[str]) -> int:
    from imagespec._task import tasks_of

    path = Path(args.file)
    if path.suffix != ".py" or not path.is_file():
        raise _core.SpecError(f"{args.file}: no such Python file")
    module = import_file(path)
    entity = entity_named(module, args.entity, path)
    tasks: list[AnyTask] = list(tasks_of([entity]))
    apply_image_options(module, args.image or (), tasks, specs_of_module(module))
    inputs = _inputs(entity, words)
    if not args.in_containers:
        _show_result(_call(entity, inputs))
        return 0
    from imagespec._engine import build
    from imagespec._task import images_needed

    needed = [image for image in images_needed([entity]) if isinstance(image, ImageSpec)]
    # --registry, --platform, --no-push move the images, and the tasks' templates with them.
    specs = [s for _, s in retargeted(args, Targets([("", s) for s in needed], [], tasks, {})).specs]
    if specs:
        from imagespec._progress import Progress, summary_table

        with Progress(verbose=args.verbose) as progress:
            report = build(
                specs,
                builder=args.builder,
                engines=args.engines,
                force_push=args.force_push,
                assume_present=True if args.assume_present else None,
                on_event=progress,
                imagespec_wheel=args.wheel,
                ca_bundle=args.ca_bundle,
                check=False,
            )
        if not report.ok:
            print(summary_table(report))
            return EXIT_ERROR
    from imagespec._containers import ContainerRunner

    with ContainerRunner(on_line=lambda line: print(line, file=sys.stderr, flush=True)):
        result = _call(entity, inputs)
    _show_result(result)
    return 0


def _call(entity: Task | Workflow, inputs: dict[str, Any]) -> Any:
    try:
        return entity(**inputs)
    except _core.ImageSpecError:
        raise
    except Exception as e:
        import traceback

        traceback.print_exc()
        raise _core.ImageSpecError(f"{entity.name} raised {type(e).__name__}: {e}") from None


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
    targets = build_targets(args)
    for label, spec in _with_bases(targets.specs):
        plan = plan_context(
            spec,
            imagespec_wheel=args.wheel,
            ca_bundle=args.ca_bundle,
            buildkit=not args.no_buildkit,
            engine=args.builder or "docker",
            flytekit_ids=targets.flytekit_ids,
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

    targets = build_targets(args)
    specs = [spec for _, spec in targets.specs]
    runs_in: dict[str, list[AnyTask]] = {}
    for t in targets.tasks:
        runs_in.setdefault(t.image_name(), []).append(t)
    with Progress(verbose=args.verbose) as progress:
        report = build(
            specs,
            builder=args.builder,
            engines=args.engines,
            force_push=args.force_push,
            max_parallel=args.parallel,
            assume_present=True if args.assume_present else None,
            no_cache=args.no_cache,
            on_event=progress,
            imagespec_wheel=args.wheel,
            ca_bundle=args.ca_bundle,
            check=False,
            flytekit_ids=targets.flytekit_ids,
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
                        "tasks": [t.template() for t in runs_in.get(r.image, [])],
                    }
                    for r in report
                ]
                + [
                    {
                        "image": ref,
                        "name": ref,
                        "id": None,
                        "outcome": "reference",
                        "builder": None,
                        "reason": "a reference, not built",
                        "seconds": 0.0,
                        "tasks": [t.template() for t in runs_in.get(ref, [])],
                    }
                    for ref in targets.refs
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


IMAGE_HELP = (
    "SPEC.yaml: the image of tasks without container_image; NAME=SPEC.yaml: instead of the ImageSpec "
    "bound to the module variable NAME; REF (name:tag, as pyflyte takes): tasks without container_image "
    "run in that reference; NAME=REF: accepted, no effect (repeatable)"
)
WHEEL_HELP = (
    "the imagespec-build wheel the images get (wheels for other platforms beside it serve those; 'index': "
    "the package index's release; default: this installation, $IMAGESPEC_WHEEL)"
)
CA_HELP = "extra CA certificates for install steps: a PEM file or a folder ($IMAGESPEC_CA_BUNDLE)"


def _add_location_options(parser: argparse.ArgumentParser) -> None:
    """The options that decide where images are built and live; `build` and `run` share them."""
    parser.add_argument(
        "--registry", metavar="REGISTRY", help="push every image (bases too) to this registry"
    )
    parser.add_argument("--platform", metavar="OS/ARCH[,...]", help="build every image for these platforms")
    parser.add_argument(
        "--push",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="push to the specs' registries (default); --no-push builds into the local engine only",
    )
    parser.add_argument(
        "--builder", metavar="NAME", help="build with this builder (docker, buildah, podman, ...)"
    )
    parser.add_argument(
        "--engines",
        metavar="ENGINE[,...]",
        help="spread the builds over these engines, e.g. docker@tcp://h1:2376?tls=DIR,docker@ssh://u@h2 "
        "($IMAGESPEC_ENGINES; docs/engines.md)",
    )
    parser.add_argument(
        "--assume-present",
        action="store_true",
        help="treat an image whose existence cannot be told as present (default: fail it)",
    )


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
        description=(
            "Print the full image name of a spec YAML file, of each ImageSpec in a Python file (or of its "
            "PEP 723 block when it defines none), or of a project's locked dependencies (pyproject.toml)."
        ),
    )
    tag.add_argument("target", metavar="SPEC.yaml|FILE.py|pyproject.toml")
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
        description="Build every image of a spec YAML file, or of a Python file (its module-level ImageSpecs "
        "and the images of its tasks; with ENTITY only that task's or workflow's), that its registry lacks, "
        "base images first; push them. Progress goes to stderr, one line per image to stdout; exit 1 when "
        "any image failed. With --dry-run, print each image's Dockerfile, context files and build secrets "
        "instead; nothing is written or built. Takes pyflyte build's options too: `pyflyte build [OPTIONS] "
        "FILE ENTITY` works as `imagespec build [OPTIONS] FILE ENTITY`.",
    )
    build.add_argument("target", metavar="SPEC.yaml|FILE.py|pyproject.toml")
    build.add_argument(
        "entity", nargs="?", metavar="ENTITY", help="only the images this task or workflow's tasks need"
    )
    build.add_argument("-i", "--image", action="append", metavar="[NAME=]SPEC.yaml|REF", help=IMAGE_HELP)
    _add_location_options(build)
    build.add_argument("--dry-run", action="store_true", help="print the Dockerfiles and context files")
    build.add_argument("--json", action="store_true", help="print the result (or the dry run) as JSON")
    build.add_argument("--force-push", action="store_true", help="build and push even the images that exist")
    build.add_argument(
        "--parallel", type=int, metavar="N", help="builds at once (2, $IMAGESPEC_MAX_PARALLEL)"
    )
    build.add_argument("--no-cache", action="store_true", help="build every step again")
    build.add_argument("-v", "--verbose", action="store_true", help="print every engine step as a line")
    build.add_argument(
        "--wheel",
        metavar="FILE",
        default=os.environ.get("IMAGESPEC_WHEEL") or None,
        help=WHEEL_HELP,
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
    _pyflyte.add_build_options(build)
    build.set_defaults(func=_cmd_build)
    run = commands.add_parser(
        "run",
        help="run a task or workflow, locally or with each task in its own image",
        description="Run a task or workflow of a Python file, with inputs given as --name value (parsed by "
        "its type hints: int, float, str, bool, JSON for lists and dicts), and print its result. With "
        "--in-containers, build the images that are missing, then run each task call inside its image "
        "with the local Docker engine ($IMAGESPEC_DOCKER, else /usr/bin/docker).",
        allow_abbrev=False,
    )
    run.add_argument("file", metavar="FILE.py")
    run.add_argument("entity", metavar="ENTITY", help="the task or workflow to run")
    run.add_argument("--in-containers", action="store_true", help="run each task in its own image")
    run.add_argument("--image", action="append", metavar="[NAME=]SPEC.yaml", help=IMAGE_HELP)
    _add_location_options(run)
    run.add_argument("--force-push", action="store_true", help="build and push even the images that exist")
    run.add_argument("-v", "--verbose", action="store_true", help="print every engine step as a line")
    run.add_argument(
        "--wheel", metavar="FILE", default=os.environ.get("IMAGESPEC_WHEEL") or None, help=WHEEL_HELP
    )
    run.add_argument(
        "--ca-bundle", metavar="PATH", default=os.environ.get("IMAGESPEC_CA_BUNDLE") or None, help=CA_HELP
    )
    run.set_defaults(func=_cmd_run)
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
    parser = _parser()
    args, words = parser.parse_known_args(argv)
    if words and args.func is not _cmd_run:
        parser.error(f"unrecognized arguments: {' '.join(words)}")
    try:
        code: int = args.func(args, words) if args.func is _cmd_run else args.func(args)
        return code
    except UsageError as e:
        print(f"imagespec: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except _core.ImageSpecError as e:
        print(f"imagespec: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("imagespec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
