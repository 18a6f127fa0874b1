"""docs/results/README.md's claim list, one line a claim, from the verdict tables of the study
files beside it (docs/results/*.md): the claim, its verdict word and seeds, the mean paired
difference, and a link to the study. The lines between the README's markers are rewritten; the
rest of the page is written by hand.

    python benchmarks/results_index.py          # rewrite the list
    python benchmarks/results_index.py --check  # exit 1 when the list is out of date

A verdict table is a Markdown table whose header starts with "| claim |" and has a column named
"verdict (n)" or "converged verdict (n)" (the last such column decides), followed by the
"A − B per seed" column its verdict was read from.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
BEGIN = "<!-- claims: written by python benchmarks/results_index.py; edit the studies, not these lines -->"
END = "<!-- end of claims -->"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def verdict_rows(path: Path) -> list[dict]:
    """Every row of every verdict table in one study file, with the section it sits under."""
    rows, section, header = [], "", None
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            section, header = line.lstrip("#").strip(), None
            continue
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            if cells[0] == "claim" and any(c.endswith("verdict (n)") for c in cells):
                header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        v = max(i for i, c in enumerate(header) if c.endswith("verdict (n)"))
        diff = cells[v + 1] if v + 1 < len(cells) else ""
        mean = re.search(r"mean ([+-]?\d+\.\d+)", diff)
        pair = diff.split(":")[0] if ":" in diff else ""
        rows.append({"claim": cells[0], "metric": cells[1], "verdict": cells[v], "pair": pair,
                     "mean": mean.group(1) if mean else "—", "file": path.name, "section": section})
    return rows


def claim_lines(folder: Path = RESULTS) -> list[str]:
    """The list's lines: the studies in the order the README's table of studies links them (any
    other after them), their claims in table order; a claim written "... x" continues the claim
    before it."""
    readme = (folder / "README.md").read_text() if (folder / "README.md").exists() else ""
    linked = list(dict.fromkeys(re.findall(r"\]\(([\w.-]+\.md)\)", readme.split(END)[-1])))
    files = [p for p in sorted(folder.glob("*.md")) if p.name != "README.md"]
    files.sort(key=lambda p: linked.index(p.name) if p.name in linked else len(linked))
    lines = ["| claim | metric | verdict (seeds) | mean A − B | A − B | study |", "|---|---|---|---:|---|---|"]
    for p in files:
        title = next((ln[2:].strip() for ln in p.read_text().splitlines() if ln.startswith("# ")), "")
        subject = ""
        for r in verdict_rows(p):
            claim = r["claim"]
            if claim.startswith("... ") and subject:
                claim = f"{subject}, {claim[4:]}"
            else:
                subject = claim
            if r["verdict"] in ("—", ""):
                continue
            where = p.name if r["section"] == title else f"{p.name}#{_anchor(r['section'])}"
            lines.append(f"| {claim} | {r['metric']} | {r['verdict']} | {r['mean']} | {r['pair']} | [{p.stem}]({where}) |")
    return lines


def rewrite(readme: Path, lines: list[str]) -> str:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no claim markers ({BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/results/README.md's list is out of date")
    args = ap.parse_args(argv)
    readme = RESULTS / "README.md"
    new = rewrite(readme, claim_lines())
    if args.check:
        if new != readme.read_text():
            print(f"{readme} is out of date: run python benchmarks/results_index.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    print(f"{readme}: {len(claim_lines()) - 2} claims")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
