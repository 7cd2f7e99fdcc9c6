"""A small table of results: rows of named values, printed with a fixed number of decimals.

No pandas needed. A lesson prints it (``print(table)``), shows it as Markdown
(``table.to_markdown()``), or reads it like a list of dicts (``table[0]["pointing"]``) or by
column (``table.column("pointing")``). The printed digits are what a notebook's stored output
is compared against, so formatting is deterministic: fixed decimals and no "-0.000".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence


def format_value(value: object, precision: int = 3) -> str:
    """Floats with ``precision`` decimals (a value that rounds to zero prints as 0, never -0),
    ints and text as they are."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        text = f"{value:.{precision}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text
    return str(value)


class Table:
    """Rows (dicts with the same keys, in the same order), a title and a print precision."""

    def __init__(self, rows: Sequence[Mapping[str, object]], title: str = "", precision: int = 3) -> None:
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            raise TypeError(f"rows must be a list of dicts {{column: value}}, got {type(rows).__name__}")
        rows = list(rows)
        for number, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"every row of a Table must be a dict {{column: value}}; row {number} is {type(row).__name__}")
        if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= 20:
            raise ValueError(f"precision must be an int from 0 to 20 (decimals), got {precision!r}")
        rows = [dict(row) for row in rows]
        if rows and any(list(row) != list(rows[0]) for row in rows):
            raise ValueError("every row of a Table must have the same columns, in the same order")
        self.rows = rows
        self.title = title
        self.precision = precision

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0]) if self.rows else []

    def column(self, name: str) -> list[object]:
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns are {self.columns}")
        return [row[name] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, object]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, object]:
        return self.rows[index]

    def _cells(self) -> list[list[str]]:
        return [[format_value(row[c], self.precision) for c in self.columns] for row in self.rows]

    def __str__(self) -> str:
        """Plain text: text columns left-aligned, numbers right-aligned."""
        cells = self._cells()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        numeric = [all(not isinstance(row[c], str) for row in self.rows) for c in self.columns]

        def line(values: list[str]) -> str:
            return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

        lines = [self.title] if self.title else []
        lines += [line(self.columns), line(["-" * w for w in widths])]
        lines += [line(r) for r in cells]
        return "\n".join(lines)

    __repr__ = __str__

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table (numbers right-aligned)."""
        numeric = [all(not isinstance(row[c], str) for row in self.rows) for c in self.columns]
        lines = [f"**{self.title}**", ""] if self.title else []
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---:" if num else ":---" for num in numeric) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in self._cells()]
        return "\n".join(lines)
