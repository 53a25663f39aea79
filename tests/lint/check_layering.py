#!/usr/bin/env python3
"""Checks that src/ follows the layering of docs/design.md: a file includes headers of its own
folder or of folders on a lower floor only. Prints every upward include and exits 1 if there is one
that is not the documented exception."""
import pathlib
import re
import sys

# Lowest floor first; folders on one floor may include each other's headers.
FLOORS = [["core"], ["config"], ["ops", "comm", "data"], ["parallel"], ["moe"], ["model"], ["train"],
          ["hf"], ["rl", "plan"], ["cli"]]
# (from folder, to folder): the one exception named in docs/design.md.
ALLOWED_UPWARD = {("train", "rl")}

FLOOR_OF = {folder: i for i, floor in enumerate(FLOORS) for folder in floor}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)


def main() -> int:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    problems, allowed, unknown = [], [], set()
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".h", ".cpp", ".cu", ".cuh"):
            continue
        folder = path.relative_to(src).parts[0]
        if folder not in FLOOR_OF:
            unknown.add(folder)
            continue
        for target in INCLUDE.findall(path.read_text()):
            if target not in FLOOR_OF:
                unknown.add(target)
            elif FLOOR_OF[target] > FLOOR_OF[folder]:
                line = f"{path}: includes {target}/ (floor {FLOOR_OF[target]}) from {folder}/ (floor {FLOOR_OF[folder]})"
                (allowed if (folder, target) in ALLOWED_UPWARD else problems).append(line)
    for folder in sorted(unknown):
        problems.append(f"folder {folder}/ is on no floor: add it to FLOORS here and to docs/design.md")
    for line in allowed:
        print(f"allowed exception: {line}")
    for line in problems:
        print(f"layering error: {line}")
    print(f"layering: {len(problems)} errors, {len(allowed)} includes through the documented exception")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
