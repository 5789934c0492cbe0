"""Files of the Debian package that are made from the tree, for scripts/build-deb.

    python3 scripts/deb_files.py manpage LIBDIR VERSION DATE   > bondha.1
    python3 scripts/deb_files.py copyright LIBDIR COPYRIGHT.IN > copyright

``LIBDIR`` is the unpacked one-file build (bondha and its libraries). The manual page is
the command's own ``--help`` texts, so it cannot drift from the parser; the copyright file
is bondha's part followed by one paragraph per library included, with the licence text
that the library ships.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from email.parser import Parser
from pathlib import Path

# Licences whose full text Debian keeps in /usr/share/common-licenses: referred to, not copied.
COMMON_LICENSES = {
    "Apache-2.0": ("Apache License", "Version 2.0"),
    "MPL-2.0": ("Mozilla Public License Version 2.0",),
}


def roff(text: str) -> str:
    """Text as roff: backslashes and dashes escaped, no line taken for a request."""
    lines = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def manpage(libdir: Path, version: str, date: str) -> str:
    sys.path.insert(0, str(libdir))
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal: the same page everywhere
    from bondha.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        f'.TH BONDHA 1 "{date}" "bondha {version}" "User Commands"',
        ".SH NAME",
        "bondha \\- keep a pair of bonders highly available, with keepalived",
        ".SH SYNOPSIS",
        ".B bondha",
        "[\\fIGLOBAL OPTION\\fR...] \\fICOMMAND\\fR [\\fIOPTION\\fR...]",
        ".SH DESCRIPTION",
        "Global options come before the command. The whole help, then each command's:",
        ".nf",
        roff(parser.format_help()),
        ".fi",
        ".SH COMMANDS",
    ]
    for name, sub in subparsers.choices.items():
        parts += [f".SS {roff(name)}", ".nf", roff(sub.format_help()), ".fi"]
    parts += [
        ".SH FILES",
        ".TP", "/etc/bonding/swap-active-bond.conf",
        "the config (the old swap\\-active\\-bond.py file); an example is "
        "/etc/bonding/swap\\-active\\-bond.conf.example",
        ".TP", "/usr/lib/bondha/swap\\-active\\-bond",
        "the keepalived notify hook",
        ".TP", "/run/bondha",
        "the state directory: lock, last event, journal of transitions and reconciles",
        ".SH SEE ALSO",
        "/usr/share/doc/bondha/operators.md.gz, /usr/share/doc/bondha/migration.md.gz",
    ]
    return "\n".join(parts) + "\n"


def _common_license(text: str) -> str | None:
    for name, needles in COMMON_LICENSES.items():
        if all(needle in text for needle in needles):
            return name
    return None


def _license_name(metadata: dict[str, str], texts: list[str]) -> str:
    expression = metadata.get("License-Expression") or ""
    if expression:
        return expression
    declared = metadata.get("License") or ""
    if declared and len(declared) < 40 and "\n" not in declared:
        return declared
    for classifier in metadata.get("Classifier", "").splitlines():
        if classifier.startswith("License :: OSI Approved :: "):
            return classifier.rsplit(" :: ", 1)[1].replace(" License", "")
    common = {_common_license(text) for text in texts} - {None}
    if len(common) == 1:
        return str(common.pop())
    raise SystemExit("deb_files: cannot tell the licence of " + metadata["Name"])


def _indent(text: str) -> str:
    return "\n".join(f" {line}" if line.strip() else " ." for line in text.strip().splitlines())


def copyright_file(libdir: Path, header: Path) -> str:
    parts = [header.read_text().rstrip("\n")]
    for info in sorted(libdir.glob("*.dist-info")):
        message = Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        metadata = {key: "\n".join(message.get_all(key) or []) for key in set(message.keys())}
        name = metadata["Name"]
        if name == "bondha":
            continue  # the header's paragraph
        licences = sorted(p for p in info.rglob("*") if p.is_file()
                          and re.match(r"(LICEN[CS]E|COPYING|NOTICE)", p.name, re.IGNORECASE))
        if not licences:
            raise SystemExit(f"deb_files: {info.name} ships no licence file")
        texts = [p.read_text(encoding="utf-8").strip() for p in licences]
        holders = sorted({line.strip() for text in texts for line in text.splitlines()
                          if re.match(r"\s*copyright\s*(\(c\)|\u00a9|\d)", line,
                                      re.IGNORECASE)})
        top = sorted({p.name.split(".")[0] for p in libdir.iterdir()
                      if p.name != info.name and _belongs(info, p)})
        parts.append("")
        parts.append("Files: " + " ".join(f"usr/lib/bondha/{t}*" for t in top))
        parts.append("Copyright: " + ("\n ".join(holders) or f"the {name} authors"))
        parts.append(f"License: {_license_name(metadata, texts)}")
        parts.append(f" {name} {metadata['Version']}, included in bondha's package.")
        for text in texts:
            common = _common_license(text)
            if common is not None:
                parts.append(f" .\n On Debian systems the full text of the {common} licence "
                             f"is in\n /usr/share/common-licenses/{common}.")
            else:
                parts.append(" .")
                parts.append(_indent(text))
    return "\n".join(parts) + "\n"


def _belongs(info: Path, path: Path) -> bool:
    """Whether ``path`` (a top-level name of the tree) is listed in the RECORD of ``info``."""
    record = (info / "RECORD").read_text(encoding="utf-8")
    return any(line.split(",", 1)[0].split("/", 1)[0] == path.name
               for line in record.splitlines())


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "manpage":
        sys.stdout.write(manpage(Path(argv[1]), argv[2], argv[3]))
        return 0
    if len(argv) == 3 and argv[0] == "copyright":
        sys.stdout.write(copyright_file(Path(argv[1]), Path(argv[2])))
        return 0
    sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
