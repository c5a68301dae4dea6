"""``pydapr``: the command-line tool (run, plugins, sentry, version)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import __version__

__all__ = ["main"]


def _plugins(args: argparse.Namespace) -> int:
    """List installed plugins (type, module, distribution, version) without importing them."""
    from .errors import PluginError
    from .pluginmanager import discover
    try:
        found = discover()
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = [(p.name, p.value, p.dist, p.version) for p in sorted(found.values(), key=lambda p: p.name)]
    if args.json:
        import orjson
        print(orjson.dumps([dict(zip(("type", "module", "distribution", "version"), r))
                            for r in rows]).decode())
        return 0
    widths = [max(len(r[i]) for r in rows + [("type", "module", "distribution", "version")])
              for i in range(4)]
    for r in [("TYPE", "MODULE", "DISTRIBUTION", "VERSION"), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    from .run import run
    return run(args, rest)


def _sentry(rest: list[str]) -> int:
    try:
        from .sentry.cli import main as sentry_main
    except ImportError:
        print("error: the sentry is not available in this build", file=sys.stderr)
        return 1
    return sentry_main(rest) or 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="pydapr", description="pydapr command-line tool")
    parser.add_argument("--version", action="version", version=f"pydapr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list installed plugins without importing them")
    p.add_argument("--json", action="store_true")
    r = sub.add_parser("run", help="run an app next to a sidecar: pydapr run --app-id X -- cmd ...")
    r.add_argument("--app-id", required=True)
    r.add_argument("--app-port", type=int)
    r.add_argument("--dapr-http-port", type=int)
    r.add_argument("--dapr-grpc-port", type=int)
    r.add_argument("--resources-path", action="append", default=[])
    r.add_argument("--config")
    r.add_argument("--log-level", default="info")
    sub.add_parser("sentry", help="run the certificate authority (pydapr sentry --help)",
                   add_help=False)
    if argv and argv[0] == "sentry":
        return _sentry(argv[1:])
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    args = parser.parse_args(argv)
    if args.command == "plugins":
        return _plugins(args)
    if args.command == "run":
        return _run(args, rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
