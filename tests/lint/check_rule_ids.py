#!/usr/bin/env python3
"""Checks that every rule id an error can print is documented in docs/rules.md, and that the page
lists no id the code no longer prints. An id is a string literal such as "L6" or "M13" (the first
argument of Problems::add) or a literal "error L12:" in a message."""
import pathlib
import re
import sys

ID_LITERAL = re.compile(r'"([ACDEHKLMPRTV][0-9]{1,2})"')
ID_IN_MESSAGE = re.compile(r'error ([ACDEHKLMPRTV][0-9]{1,2}):')
DOC_ROW = re.compile(r'^\|\s*`?([ACDEHKLMPRTV][0-9]{1,2})`?\s*\|', re.M)


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    printed = {}
    for path in sorted((root / "src").rglob("*.cpp")):
        text = path.read_text()
        for rule in ID_LITERAL.findall(text) + ID_IN_MESSAGE.findall(text):
            printed.setdefault(rule, path.relative_to(root))
    documented = set(DOC_ROW.findall((root / "docs" / "rules.md").read_text()))
    errors = [f"{rule} is printed by {where} but has no row in docs/rules.md" for rule, where in
              sorted(printed.items()) if rule not in documented]
    errors += [f"docs/rules.md documents {rule}, which no source file prints" for rule in
               sorted(documented - set(printed))]
    for e in errors:
        print(f"rule ids: {e}")
    print(f"rule ids: {len(printed)} printed, {len(documented)} documented, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
