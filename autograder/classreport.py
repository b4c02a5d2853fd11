"""The class report after a batch: what an instructor reads before the next lecture.

`autograded/<chapter>-report.html` (self-contained) and `-report.md` (beside `-scores.png`):
how many students passed each part of each layer, a histogram of the scores, the most common
causes of failure across the class, grouped by the cause the grader names ("it matches the output
when dilation is ignored: 23 students", with the students), the submissions flagged for review,
and the faults of the students' processes (timeouts, crashes, memory). Built from the journal, so
it covers every graded submission of the chapter, this batch's and earlier ones'.
"""

from __future__ import annotations

import base64
import html
import io
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .spec import CHAPTERS, PARTS

#: causes and students listed at most, per table
TOP_CAUSES, NAMES = 15, 12


def cause_of(part: str, detail: str) -> str:
    """The cause a failure line names, without its numbers: "it matches the output when <cause>" when
    the grader recognised the mistake, else the failure's first clause ("forward raised KeyError",
    "not vectorized", "calls torch.nn.functional.conv2d")."""
    found = re.search(r"it matches the (?:output|buffer) when (.+?)(?:$|; )", detail)
    if found:
        text = found.group(1)
    else:
        text = re.sub(r"^(values not compared|values not checked|not run|not run in \w+): ", "", detail)
        raised = re.match(r"(.*?(?:raised \w+|did not finish|was not run))", text)
        text = raised.group(1) if raised else re.split(r"[:;(]", text)[0]
    text = re.sub(r"\b\d+(\.\d+)?(e-?\d+)?\b", "N", text).strip()
    return f"{part}: {text[:160]}"


def _summarise(entries: list[dict]) -> dict[str, Any]:
    layers = defaultdict(lambda: defaultdict(set))  # layer -> part -> students who passed
    seen = defaultdict(set)  # layer -> students graded on it
    causes = defaultdict(set)
    for e in entries:
        by_layer = defaultdict(list)
        for r in e.get("reports", []):
            by_layer[r["layer"]].append(r)
            for part, detail, _ in r.get("failures", []):
                causes[cause_of(part, detail)].add(e["student"])
        for layer, reports in by_layer.items():
            seen[layer].add(e["student"])
            for part in PARTS:
                if all(r["parts"].get(part, False) for r in reports if part in r["parts"]) and \
                        any(part in r["parts"] for r in reports):
                    layers[layer][part].add(e["student"])
    return {"layers": layers, "seen": seen, "causes": sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0]))}


def _histogram(scores: list[float], top: float, chapter: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=100)
    bins = min(20, max(5, int(top) + 1)) if top else 10
    ax.hist(scores, bins=bins, range=(0, top or 1), color="#3b6ea8", edgecolor="white")
    ax.set(xlabel=f"score (of {top:g})", ylabel="students", title=f"{chapter}: {len(scores)} submissions")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _names(students: set[str]) -> str:
    names = sorted(students)
    return ", ".join(names[:NAMES]) + (f" and {len(names) - NAMES} more" if len(names) > NAMES else "")


def write_report(batch: Any) -> Path:
    """Write the chapter's class report from the batch's journal; the HTML file's path."""
    chapter, out = batch.chapter, batch.autograded
    entries = sorted(batch.journal.entries.values(), key=lambda e: e["student"])
    data = _summarise(entries)
    scores = [float(e["score"]) for e in entries]
    top = max((float(e["max_score"]) for e in entries), default=0.0)
    png = _histogram(scores, top, chapter)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{chapter}-scores.png").write_bytes(png)
    flagged = [(e["student"], e["flags"]) for e in entries if e.get("flags")]
    faults = [(e["student"], kind, text) for e in entries for kind, text in e.get("faults", [])]
    layers = [name for name in CHAPTERS.get(chapter, []) if name in data["seen"]] + \
        sorted(set(data["seen"]) - set(CHAPTERS.get(chapter, [])))

    md = [f"# Class report: {chapter}", "",
          f"{len(entries)} submissions graded; score mean {statistics.fmean(scores) if scores else 0:.2f}, "
          f"median {statistics.median(scores) if scores else 0:g} of {top:g}. "
          f"Written {time.strftime('%Y-%m-%d %H:%M')}.", "",
          "## Who passed what", "", "| layer | " + " | ".join(PARTS) + " |",
          "|---|" + "---:|" * len(PARTS)]
    for layer in layers:
        n = len(data["seen"][layer])
        md.append(f"| {layer} | " + " | ".join(f"{len(data['layers'][layer][p])}/{n}" for p in PARTS) + " |")
    md += ["", "## Scores", "", f"![scores]({chapter}-scores.png)", "", "## The most common causes of failure", ""]
    if data["causes"]:
        md += ["| cause | students | who |", "|---|---:|---|"]
        md += [f"| {c.replace('|', '/')} | {len(s)} | {_names(s)} |" for c, s in data["causes"][:TOP_CAUSES]]
    else:
        md.append("No failures.")
    md += ["", "## Flagged for review", ""]
    md += [f"- **{student}**: {'; '.join(flags[:3])}" + (f" (and {len(flags) - 3} more)" if len(flags) > 3 else "")
           for student, flags in flagged] or ["None."]
    md += ["", "## Faults of the students' processes", ""]
    md += [f"- **{student}** ({kind}): {text}" for student, kind, text in faults] or ["None."]
    (out / f"{chapter}-report.md").write_text("\n".join(md) + "\n")

    esc = html.escape
    rows = "".join(f"<tr><td>{esc(layer)}</td>" + "".join(
        f"<td>{len(data['layers'][layer][p])}/{len(data['seen'][layer])}</td>" for p in PARTS) + "</tr>"
                   for layer in layers)
    causes = "".join(f"<tr><td>{esc(c)}</td><td>{len(s)}</td><td>{esc(_names(s))}</td></tr>"
                     for c, s in data["causes"][:TOP_CAUSES]) or "<tr><td colspan=3>No failures.</td></tr>"
    flags_html = "".join(f"<li><b>{esc(s)}</b>: {esc('; '.join(f[:3]))}</li>" for s, f in flagged) or "<li>None.</li>"
    faults_html = "".join(f"<li><b>{esc(s)}</b> ({esc(k)}): {esc(t)}</li>" for s, k, t in faults) or "<li>None.</li>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Class report: {esc(chapter)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
td:not(:first-child){{text-align:right}}th{{background:#f3f3f3}}</style></head><body>
<h1>Class report: {esc(chapter)}</h1>
<p>{md[2]}</p>
<h2>Who passed what</h2>
<table><tr><th>layer</th>{''.join(f'<th>{p}</th>' for p in PARTS)}</tr>{rows}</table>
<h2>Scores</h2>
<img alt="histogram of the scores" src="data:image/png;base64,{base64.b64encode(png).decode()}">
<h2>The most common causes of failure</h2>
<table><tr><th>cause</th><th>students</th><th>who</th></tr>{causes}</table>
<h2>Flagged for review</h2><ul>{flags_html}</ul>
<h2>Faults of the students' processes</h2><ul>{faults_html}</ul>
</body></html>
"""
    path = out / f"{chapter}-report.html"
    path.write_text(page)
    return path
