"""One compact Markdown table from several ``necessity.json`` files (scripts/modality_necessity.py).

Each row is one policy run and split: clean success of the agent, expert and random, and the
agent's drop per masked modality (learned mask / zeros), in points with its 95 % interval;
``**`` marks a drop whose interval lies entirely at or above the bar (30 points by default).

    python scripts/necessity_summary.py LABEL=path/necessity.json [...] [--bar 30]
"""

from __future__ import annotations

import argparse
import json
import sys


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def rows(label: str, data: dict, bar: float) -> list[str]:
    """Markdown rows (one per split) of one necessity.json."""
    out = []
    meta = data["meta"]
    for split in meta["splits"]:
        res = data["results"]
        clean = res["agent"][split]["clean"]
        ref = {
            name: _pct(res[name][split]["clean"]["success"]) if name in res else "n/a"
            for name in ("expert", "random")
        }
        cells = []
        for modality in meta["modalities"]:
            parts = []
            for kind in meta["mask_kinds"]["agent"]:
                d = data["drops"]["agent"][split].get(f"-{modality}:{kind}")
                if d is None:
                    continue
                lo, hi = d["ci"]
                mark = "**" if lo * 100 >= bar else ""
                parts.append(f"{mark}{_pct(d['drop'])} [{_pct(lo)}, {_pct(hi)}]{mark}")
            cells.append(" / ".join(parts))
        out.append(
            f"| {label} | {split} | {_pct(clean['success'])} | {ref['expert']} | "
            f"{ref['random']} | " + " | ".join(cells) + " |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=necessity.json")
    parser.add_argument("--bar", type=float, default=30.0, help="drop bar in points")
    args = parser.parse_args(argv)
    header_done = False
    for item in args.runs:
        label, sep, path = item.partition("=")
        if not sep:
            parser.error(f"expected LABEL=path/necessity.json, got {item!r}")
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, json.JSONDecodeError) as err:
            print(f"necessity_summary: cannot read {path}: {err}", file=sys.stderr)
            return 2
        if not header_done:
            mods = data["meta"]["modalities"]
            kinds = "/".join(data["meta"]["mask_kinds"]["agent"])
            print(
                "| run | split | agent clean % | expert % | random % | "
                + " | ".join(f"drop -{m} ({kinds})" for m in mods)
                + " |"
            )
            print("|---|---|---:|---:|---:|" + "---|" * len(mods))
            header_done = True
        print("\n".join(rows(label, data, args.bar)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
