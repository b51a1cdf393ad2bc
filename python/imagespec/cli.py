"""The ``imagespec`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _exists(args: argparse.Namespace) -> int:
    from imagespec import RegistryError, check

    try:
        results = check(
            args.images,
            platforms=args.platform or None,
            registry_config=args.registry_config,
            insecure=args.insecure or None,
            use_cache=not args.no_cache,
            timeout=args.timeout,
        )
    except RegistryError as e:
        print(f"imagespec exists: {e}", file=sys.stderr)
        return 2
    width = max(len(r.reference) for r in results)
    for r in results:
        detail = r.digest if r.status == "exists" else r.reason
        print(f"{r.status:<8} {r.reference:<{width}}  {detail or ''}".rstrip())
    return 0 if all(r.status == "exists" for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagespec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "exists",
        help="say whether images exist in their registries",
        description="Print one line per image (exists/missing/unknown); exit 1 when any is not 'exists'.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image reference, e.g. localhost:5000/app:tag")
    p.add_argument("--platform", action="append", metavar="OS/ARCH", help="platform the image must provide")
    p.add_argument("--registry-config", metavar="FILE", help="docker config.json with credentials")
    p.add_argument("--insecure", action="append", metavar="REGISTRY", help="allow plain HTTP to this registry")
    p.add_argument("--no-cache", action="store_true", help="ask the registry even for images seen recently")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (default 10)")
    p.set_defaults(func=_exists)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
