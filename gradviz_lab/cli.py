"""The ``gradviz`` command line: ``gradviz --help`` lists the subcommands.

Each subcommand lives in the module it belongs to, which defines ``add_arguments(parser)`` and
``run(args) -> int``; ``SUBCOMMANDS`` maps the subcommand's name to that module and a help line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "course": ("gradviz_lab.course", "copy the course (lessons, exercises, solutions) into a folder of yours, keeping your changes"),
    "lab": ("gradviz_lab.lab", "start JupyterLab on your copy of the course (127.0.0.1, fresh token)"),
    "exercises": ("gradviz_lab.exercises", "generate exercises/ from solutions/ (or --check for staleness)"),
    "train": ("gradviz_lab.train", "train a lab model (digits, digits-robust, shapes, shapes-tagged, shapes-softplus, shapes-vit) into ./lab-models/ or --out"),
    "explain": ("gradviz_lab.explain", "write the figure explaining one image (model, method, target, knobs) to a PNG"),
    "gradient-flow": ("gradviz_lab.diagnostics.cli", "vanishing gradients: train deep sigmoid/relu/batchnorm/residual nets, plot the flow"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments, so that
    ``gradviz --help`` answers at once instead of first importing torch."""
    parser = argparse.ArgumentParser(
        prog="gradviz",
        description="gradviz-lab: see what a convolutional network looks at.",
    )
    parser.add_argument("--version", action="version", version=f"gradviz-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub_parser)
    return parser


def requested_command(argv: list[str]) -> str | None:
    """The subcommand named in argv: its first word that is not an option (None if none is)."""
    words = [word for word in argv if not word.startswith("-")]
    return words[0] if words and words[0] in SUBCOMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(requested_command(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
