"""Counting what an import did, row by row: read, written, skipped with reasons.

Outcomes come from :mod:`storage.portability.imports` (``written``, ``exists``, ... or
``"<problem>: <detail>"``). Skips for a benign reason (already there, merged) are counted;
problems (rules broken, orphans, conflicts) are also listed so nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from storage.portability.imports import CHANGED, EXISTS, WRITTEN

# Skips that are not problems: the data is there already or lives on in another row.
BENIGN = {
    EXISTS,
    CHANGED,
    "merged into an assistant message",
    "already converted to Message_v2 by ai-chatbot",
    "merged into the account with the same email",
}
SHOWN_PROBLEMS = 20


def reason_kind(outcome: str) -> str:
    return outcome.split(": ", 1)[0]


@dataclass
class TableReport:
    name: str
    read: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    problems: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""

    def add(self, row_key: str, outcome: str, sink: IO[str] | None = None) -> None:
        if outcome == WRITTEN:
            self.written += 1
            return
        kind = reason_kind(outcome)
        self.skipped[kind] += 1
        if kind not in BENIGN:
            self.problems += 1
            if len(self.examples) < SHOWN_PROBLEMS:
                self.examples.append((row_key, outcome))
        if sink is not None and outcome != EXISTS:
            sink.write(json.dumps({"table": self.name, "row": row_key, "outcome": outcome}) + "\n")

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.name,
            "read": self.read,
            "written": self.written,
            "skipped": dict(self.skipped),
            "problems": self.problems,
            "note": self.note,
        }


@dataclass
class ImportReport:
    tables: dict[str, TableReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport(name))

    @property
    def problems(self) -> int:
        return sum(t.problems for t in self.tables.values())

    def lines(self) -> list[str]:
        """A human summary: one line per table, then the first problems of each."""
        verb = "would write" if self.dry_run else "written"
        out = []
        for t in self.tables.values():
            skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(t.skipped.items())) or "none"
            line = f"{t.name}: read {t.read}, {verb} {t.written}, skipped {sum(t.skipped.values())} ({skipped})"
            out.append(line + (f" [{t.note}]" if t.note else ""))
        for t in self.tables.values():
            for row_key, outcome in t.examples:
                out.append(f"  problem in {t.name} {row_key}: {outcome}")
            if t.problems > len(t.examples):
                out.append(f"  ... and {t.problems - len(t.examples)} more problems in {t.name}")
        out.extend(f"note: {note}" for note in self.notes)
        return out
