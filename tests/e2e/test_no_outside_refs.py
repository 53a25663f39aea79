"""No file of the repository refers outside it, and every documentation reference resolves.

1. No tracked file names the out-of-tree specification: no `../shared` or `shared/docs` path, no
   "spec 01".."spec 04" citation, no `DESIGN.md`, no `docs/spec/` path. The documentation that
   used to live there is docs/ (design.md, topology.md, moe.md, dense-parallel.md, pipeline.md,
   rl.md).
2. Every "docs/NAME.md" a tracked file mentions exists, and every "docs/NAME.md §N" (or, inside
   docs/, "NAME.md §N") names a section N that NAME.md has as a numbered heading.

The argument (the foldmoe binary, as for every e2e test) is not used.
"""
import os
import re
import subprocess

from e2e_common import ROOT, main

SELF = os.path.relpath(os.path.abspath(__file__), ROOT)

# Built from pieces so that this file does not match itself.
OUTSIDE = [
    re.compile(r"\.\./" + "shared"),
    re.compile("shared" + r"/docs"),
    re.compile(r"\b[Ss]pec" + r" 0[1-4]\b"),
    re.compile("DESIGN" + r"\.md"),
    re.compile(r"\bdocs/" + r"spec/"),
]
# "docs/moe.md", "docs/moe.md §4.5"; inside docs/ also "moe.md §4.5" and link targets "](moe.md)".
DOC_MENTION = re.compile(r"(?<![\w./-])((?:docs/)?[A-Za-z][\w-]*\.md)(?:\s+§\s*(\d+(?:\.\d+)*))?")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s")


def repository_files():
    """The tracked files; outside a git checkout (an exported tree), every file but build outputs."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return out.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(ROOT):
            dirs[:] = [x for x in dirs if x != ".git" and not x.startswith("build") and x != "runs"]
            files += [os.path.relpath(os.path.join(d, n), ROOT) for n in names]
        return files


def tracked_text_files():
    for rel in repository_files():
        if not rel or rel == SELF:
            continue
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            continue  # deleted in the work tree
        try:
            with open(path, encoding="utf-8") as f:
                yield rel, f.read()
        except UnicodeDecodeError:
            continue  # binary (images)


_sections = {}


def sections_of(doc_path):
    if doc_path not in _sections:
        nums = set()
        with open(doc_path, encoding="utf-8") as f:
            for line in f:
                m = HEADING.match(line)
                if m:
                    nums.add(m.group(1))
        _sections[doc_path] = nums
    return _sections[doc_path]


def test_nothing_refers_outside_the_repository():
    hits = []
    for rel, text in tracked_text_files():
        for n, line in enumerate(text.split("\n"), 1):
            if any(rx.search(line) for rx in OUTSIDE):
                hits.append(f"{rel}:{n}: {line.strip()[:160]}")
    assert not hits, f"{len(hits)} lines refer outside the repository (point them into docs/):\n" + "\n".join(hits)


def test_every_docs_reference_resolves():
    bad = []
    for rel, text in tracked_text_files():
        in_docs = rel.startswith("docs/")
        for n, line in enumerate(text.split("\n"), 1):
            seen = set()
            for m in DOC_MENTION.finditer(line):
                name, section = m.group(1), m.group(2)
                if name.startswith("docs/"):
                    target = os.path.join(ROOT, name)
                elif in_docs and (section or line[max(0, m.start() - 2):m.start()] == "]("):
                    target = os.path.join(ROOT, os.path.dirname(rel), name)
                else:
                    continue  # other .md names (README.md, upstream files) are not doc references
                if (name, section) in seen:
                    continue
                seen.add((name, section))
                if not os.path.isfile(target):
                    bad.append(f"{rel}:{n}: {name} does not exist")
                elif section and section not in sections_of(target):
                    bad.append(f"{rel}:{n}: {name} has no section {section}")
    assert not bad, f"{len(bad)} unresolved documentation references:\n" + "\n".join(bad)


def test_the_checker_sees_what_it_must():
    # The patterns catch the forms the code used to cite, and the heading parser reads ours.
    samples = ["see ../" + "shared/docs/x", "spec" + " 02 §4.5", "Spec" + " 03 §11", "DESIGN" + ".md §3"]
    for s in samples:
        assert any(rx.search(s) for rx in OUTSIDE), s
    assert not any(rx.search("docs/moe.md §4.5, specification 2") for rx in OUTSIDE)
    assert HEADING.match("### 4.5 `global_aux_loss`").group(1) == "4.5"
    assert HEADING.match("## 6. Pipeline").group(1) == "6"
    m = DOC_MENTION.search("(docs/pipeline.md §6.3–6.4)")
    assert m.group(1) == "docs/pipeline.md" and m.group(2) == "6.3"


if __name__ == "__main__":
    main([test_the_checker_sees_what_it_must, test_nothing_refers_outside_the_repository,
          test_every_docs_reference_resolves])
