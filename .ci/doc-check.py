#!/usr/bin/env python3
"""Two checks that keep the docs true to the tree (run by .ci/run):

1. every repository path that README.md or a page under docs/ names in backticks exists
   (from the repository root, or from docs/ or src/, as the pages write them);
2. every rule number the code cites ("rule 8", "rules 3 and 6", "rules 1 to 5") is a rule
   of docs/spec.md.

Prints each miss and exits 1 if there is one. CHANGELOG.md is history and may name paths
that are gone: it is not checked.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PATH = re.compile(
    r"`([A-Za-z0-9_.-][A-Za-z0-9_./-]*/[A-Za-z0-9_.-]+\.(?:rs|md|sh|py|c|h|toml|json|svg|supp|in))`"
)
# Placeholders and places outside the repository that pages name on purpose.
NOT_REPO = ("PREFIX/", "target/", "../")
RULE = re.compile(r"\b[Rr]ules? (\d+(?:(?:,| and| to| or|-|–)\s*\d+)*)")
CODE_DIRS = ("src", "capi", "dmabuf", "fuzz", "fuzzing", "torture", "tests", "benches",
             "hwtest", "taskbench", "report")


def pages():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").rglob("*.md"))


def missing_paths():
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), 1):
            for path in PATH.findall(line):
                if path.startswith(NOT_REPO):
                    continue
                if not any((base / path).exists() for base in (ROOT, ROOT / "docs", ROOT / "src")):
                    yield f"{page.relative_to(ROOT)}:{lineno}: `{path}` does not exist"


def spec_rules():
    spec = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
    return {int(n) for n in re.findall(r"^(\d+)\. \*\*", spec, re.M)}


def cited(match):
    """The rule numbers of one citation: "3 and 6" -> 3, 6; "1 to 5" -> 1..5."""
    text = match.replace("–", "-")
    numbers = []
    for part in re.split(r",| and| or", text):
        part = part.strip()
        span = re.fullmatch(r"(\d+)\s*(?:to|-)\s*(\d+)", part)
        if span:
            numbers += range(int(span.group(1)), int(span.group(2)) + 1)
        elif part:
            numbers.append(int(part))
    return numbers


def unknown_rules():
    rules = spec_rules()
    if not rules:
        yield "docs/spec.md: no numbered rules found"
        return
    for top in CODE_DIRS:
        for source in sorted((ROOT / top).rglob("*")):
            if source.suffix not in (".rs", ".c", ".h") or "target" in source.parts:
                continue
            text = source.read_text(encoding="utf-8", errors="replace")
            for lineno, line in enumerate(text.splitlines(), 1):
                for match in RULE.findall(line):
                    for n in cited(match):
                        if n not in rules:
                            yield f"{source.relative_to(ROOT)}:{lineno}: rule {n} is not in docs/spec.md"


def main():
    misses = list(missing_paths()) + list(unknown_rules())
    for miss in misses:
        print(miss)
    if misses:
        print(f"doc-check: {len(misses)} problem(s)", file=sys.stderr)
        return 1
    print(f"doc-check: every path the docs name exists; every rule the code cites is in docs/spec.md ({len(spec_rules())} rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
