"""``klambda``: run the platform locally and manage functions from the shell.

Only argparse is imported at module level so ``klambda --help`` stays fast; each command
imports what it needs.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

EPILOG = """\
exit codes:
  0  success
  1  the function ran and returned an error (invoke)
  2  usage error: bad arguments, unreadable files, invalid manifests
  3  service error: the platform is unreachable or answered with an error

environment:
  KLAMBDA_ENDPOINT   default for --endpoint (http://127.0.0.1:9000)
  KLAMBDA_STATE_DIR  default for `klambda up --state-dir` (./.klambda)
"""

GET_KINDS = ("functions", "versions", "aliases", "layers", "event-source-mappings", "esm")


def _common(p: argparse.ArgumentParser, *, namespace: bool = True) -> None:
    p.add_argument(
        "--endpoint",
        default=os.environ.get("KLAMBDA_ENDPOINT", "http://127.0.0.1:9000"),
        help="platform URL (default: $KLAMBDA_ENDPOINT or http://127.0.0.1:9000)",
    )
    if namespace:
        p.add_argument("-n", "--namespace", default=None,
                       help="namespace (default: default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klambda",
        description="klambda: AWS Lambda's programming model, self-hosted.\n"
        "Start with `klambda up -f examples/hello.yaml`, then `klambda invoke hello`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help_: str, description: str = "") -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_, description=textwrap.fill(description or help_, 79), epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    up = add("up", "run the platform in the foreground (Ctrl-C stops it)",
             "Runs the whole platform on this machine: the Invoke API, metrics and the admin "
             "API on --host:--port, environments as local processes, state in --state-dir. "
             "Manifests given with -f are applied at start.")
    up.add_argument("--port", type=int, default=9000, help="HTTP port (default: 9000)")
    up.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    up.add_argument("--state-dir", default=os.environ.get("KLAMBDA_STATE_DIR", "./.klambda"),
                    help="state directory (default: $KLAMBDA_STATE_DIR or ./.klambda)")
    up.add_argument("-f", "--filename", action="append", default=[], metavar="PATH",
                    help="manifest file or directory to apply at start (repeatable)")

    ap = add("apply", "create or update resources from manifests",
             "Validates the manifests locally, then applies them all at once (nothing changes "
             "if anything is wrong). Layers are applied before Functions, Functions before "
             "Aliases.")
    ap.add_argument("-f", "--filename", action="append", required=True, metavar="PATH",
                    help="file, directory (its *.yaml, *.yml, *.json) or - for stdin")
    ap.add_argument("-R", "--recursive", action="store_true", help="recurse into directories")
    ap.add_argument("--dry-run", action="store_true",
                    help="only validate the manifests locally (no platform needed)")
    _common(ap)

    de = add("delete", "delete the resources named in manifests (or KIND NAME)",
             "Deletes resources. Deleting a Function deletes its versions and aliases.")
    de.add_argument("kind", nargs="?", help="function | layer | alias | eventsourcemapping")
    de.add_argument("name", nargs="?", help="resource name (metadata.name)")
    de.add_argument("-f", "--filename", action="append", default=[], metavar="PATH",
                    help="file, directory or - for stdin")
    de.add_argument("-R", "--recursive", action="store_true", help="recurse into directories")
    _common(de)

    ge = add("get", "list functions, versions, aliases, layers or event source mappings")
    ge.add_argument("what", choices=GET_KINDS,
                    metavar="{functions,versions,aliases,layers,event-source-mappings|esm}")
    ge.add_argument("name", nargs="?", help="only this function (versions, aliases), layer or "
                    "event source mapping (metadata.name)")
    ge.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table",
                    help="output format (default: table)")
    ge.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    _common(ge)

    inv = add("invoke", "invoke a function through the Invoke API",
              "Invokes NAME[:QUALIFIER] (a version number, an alias or $LATEST). The result "
              "goes to stdout; with --log the function's log tail goes to stderr.")
    inv.add_argument("function", metavar="NAME[:QUALIFIER]")
    inv.add_argument("-p", "--payload", default=None,
                     help="JSON payload, or @FILE to read it from a file (@- for stdin)")
    mode = inv.add_mutually_exclusive_group()
    mode.add_argument("--event", action="store_true", help="asynchronous invocation (202)")
    mode.add_argument("--dry-run", action="store_true", help="only check access (204)")
    inv.add_argument("--log", action="store_true", help="print the log tail (stderr)")
    _common(inv)

    pub = add("publish-version", "publish $LATEST as a new immutable version",
              "Publishes a version; when nothing changed since the last one, that one is "
              "returned (like Lambda's PublishVersion).")
    pub.add_argument("function", metavar="NAME")
    pub.add_argument("-d", "--description", default="", help="version description")
    _common(pub)

    lo = add("logs", "print a function's logs")
    lo.add_argument("function", metavar="NAME")
    lo.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    lo.add_argument("--tail", type=int, default=-1, help="only the last N lines")
    _common(lo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "namespace"):
        args.namespace_explicit = args.namespace is not None
        args.namespace = args.namespace or "default"
    from . import commands
    from .errors import CliError, ServiceError, UsageError

    try:
        code: int = getattr(commands, "cmd_" + args.command.replace("-", "_"))(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for line in exc.errors:
            print(f"  - {line}", file=sys.stderr)
        return exc.exit_code
    except ServiceError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
