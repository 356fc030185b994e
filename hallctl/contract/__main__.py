"""``python -m hallctl.contract TOPIC [FILE]``: check one payload (FILE, or standard input) against
the schema of TOPIC and print what is wrong with it; exit 0 when it fits, 1 when not, 2 on a usage
error. ``--strict`` also refuses fields no schema lists; ``--schemas`` prints the folder holding the
schema files (for any other JSON Schema tool) and ``--schema TOPIC`` the file of a topic."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from hallctl.contract.validate import problems, schema_file_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hallctl.contract", description=__doc__.split("\n\n")[0])
    parser.add_argument("topic", nargs="?", help="the topic the payload was (or will be) published on")
    parser.add_argument("file", nargs="?", type=Path, help="the payload; standard input when left out")
    parser.add_argument("--strict", action="store_true", help="also refuse fields no schema lists")
    parser.add_argument("--action", help="on central/res/<client>: the action answered")
    parser.add_argument("--schemas", action="store_true", help="print the folder of the schema files")
    parser.add_argument("--schema", action="store_true", help="print the schema file of TOPIC")
    args = parser.parse_args(argv)
    if args.schemas:
        print(resources.files("hallctl.contract") / "schemas")
        return 0
    if args.topic is None:
        parser.print_usage(sys.stderr)
        return 2
    if args.schema:
        name = schema_file_for(args.topic)
        if name is None:
            print(f"no schema for topic {args.topic}", file=sys.stderr)
            return 1
        print(resources.files("hallctl.contract") / "schemas" / name)
        return 0
    payload = args.file.read_bytes() if args.file is not None else sys.stdin.buffer.read()
    found = problems(args.topic, payload, action=args.action, strict=args.strict)
    for problem in found:
        print(problem)
    if not found:
        print("ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
