"""The outcome of grading one layer: results grouped into parts, and how they print."""

from __future__ import annotations

from dataclasses import dataclass, field

#: failure lines printed per part before the rest is summarised
SHOWN_PER_PART = 6


@dataclass(frozen=True)
class Result:
    """One check. `where` names the configuration (`Linear(5, 3)`), `tag` its dtype and mode."""

    part: str
    where: str
    ok: bool
    detail: str = ""
    tag: str = ""
    check: str = ""  # which check of a configuration, when it runs several (e.g. "calls", "meta")


@dataclass
class Report:
    """Grading of one layer. `passed`, `score`, `max_score` and `failures` are the stable API."""

    name: str
    parts: tuple[str, ...]
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    header: str = ""
    seed: int | None = None  # the hidden suite's seed, when it was graded
    faults: list[str] = field(default_factory=list)  # the student's process could not answer (timeouts, crashes)
    fault_kinds: list[str] = field(default_factory=list)  # "timeout", "crash", "memory", ... for each fault

    def subset(self, parts: tuple[str, ...]) -> Report:
        """The same grading seen through fewer parts (one test cell's)."""
        chosen = tuple(p for p in self.parts if p in parts)
        return Report(self.name, chosen, [r for r in self.results if r.part in chosen], list(self.notes),
                      self.header, self.seed, list(self.faults), list(self.fault_kinds))

    def part_passed(self, part: str) -> bool:
        return all(r.ok for r in self.results if r.part == part)

    @property
    def passed(self) -> bool:
        return all(self.part_passed(p) for p in self.parts)

    @property
    def score(self) -> float:
        """One point per part whose checks all passed."""
        return float(sum(self.part_passed(p) for p in self.parts))

    @property
    def max_score(self) -> float:
        return float(len(self.parts))

    def _failure_lines(self, part: str) -> list[str]:
        """Failed checks of a part, one line per configuration: its first cause, and the dtypes
        and modes it failed in. Named checks (a judge's, a rule's) come first: they usually name
        the cause, which a long list of value differences could push out of sight."""
        merged: dict[tuple[str, str], tuple[str, list[str]]] = {}
        for r in self.results:
            if r.part == part and not r.ok:
                _, tags = merged.setdefault((r.where, r.check), (r.detail, []))
                if r.tag and r.tag not in tags:
                    tags.append(r.tag)
        lines = []
        for (where, _), (detail, tags) in sorted(merged.items(), key=lambda item: not item[0][1]):
            label = f"{where} [{'; '.join(tags)}]" if tags else where
            lines.append(f"{label}: {detail}" if label else detail)
        return lines

    @property
    def failures(self) -> list[str]:
        """Every distinct failure as `part: configuration [dtype, mode]: cause`."""
        return [f"{part}: {line}" for part in self.parts for line in self._failure_lines(part)]

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        lines = [f"{self.name}: {verdict}, {self.score:g}/{self.max_score:g} parts"
                 + (f" ({self.header})" if self.header else "")]
        for part in self.parts:
            checks = [r for r in self.results if r.part == part]
            failed = self._failure_lines(part)
            if not failed:
                lines.append(f"  \u2713 {part:<8} {len(checks)} checks")
                continue
            n_bad = sum(not r.ok for r in checks)
            lines.append(f"  \u2717 {part:<8} {n_bad} of {len(checks)} checks failed")
            lines += [f"      {line}" for line in failed[:SHOWN_PER_PART]]
            if len(failed) > SHOWN_PER_PART:
                lines.append(f"      ... and {len(failed) - SHOWN_PER_PART} more")
        lines += [f"  fault: {fault}" for fault in dict.fromkeys(self.faults)]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython shows the readable form
        printer.text(str(self))
