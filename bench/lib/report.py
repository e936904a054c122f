"""Medians across repetitions and the markdown table."""

import statistics

from products import REFERENCES

# (scenario, scenario label, key, metric label, better: "higher" | "lower" | None, format)
ROWS = [
    (1, "1 KiB fresh hits, 50 conns", "rps", "req/s", "higher", "{:.0f}"),
    (1, "", "p50_ms", "p50 latency (ms)", "lower", "{:.2f}"),
    (1, "", "p99_ms", "p99 latency (ms)", "lower", "{:.2f}"),
    (1, "", "req_per_cpu", "req per proxy CPU-second", "higher", "{:.0f}"),
    (2, "1 MiB fresh hits, 50 conns", "mbps", "MB/s", "higher", "{:.0f}"),
    (2, "", "req_per_cpu", "req per proxy CPU-second", "higher", "{:.1f}"),
    (3, "Stale hits, 304 revalidation, 1000 URLs", "rps", "req/s", "higher", "{:.0f}"),
    (3, "", "req_per_cpu", "req per proxy CPU-second", "higher", "{:.0f}"),
    (3, "", "reval_share", "share revalidated at origin (check)", None, "{:.0%}"),
    (4, "50 clients, 1 stale URL (max-age=1)", "cond_per_window", "origin conditionals per 1 s window", "lower",
     "{:.1f}"),
    (4, "", "full_refetch", "any full 200 refetch from origin", None, "any"),
    (5, "Cold misses, unique URLs", "rps", "req/s", "higher", "{:.0f}"),
    (5, "", "req_per_cpu", "req per proxy CPU-second", "higher", "{:.0f}"),
    (6, "100 clients, cold 16 MiB @ 4 MB/s", "upstream_fetches", "upstream fetches", "lower", "{:.0f}"),
    (6, "", "t_last_s", "time to last whole body (s)", "lower", "{:.2f}"),
    (6, "", "ratio_single", "ratio to 1 client alone", "lower", "{:.2f}"),
    (7, "10k idle keep-alive conns", "rss_mib", "proxy RSS (MiB)", "lower", "{:.1f}"),
    (7, "", "kib_per_conn", "RSS growth per conn (KiB)", "lower", "{:.2f}"),
]


def aggregate(runs, key, fmt):
    """Median over repetitions; for the yes/no row, whether it happened in any repetition."""
    vals = [r["values"].get(key) for r in runs if r and r.get("values")]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    if fmt == "any":
        return sum(vals)
    return statistics.median(vals)


def fmt_value(v, fmt):
    if v is None:
        return "n/a"
    if fmt == "any":
        return "no" if v == 0 else f"yes ({v:.0f})"
    return fmt.format(v)


# Metrics whose ideal is a known value: anything better than it counts as the ideal in the ratio
# (fewer than one revalidation per staleness window only means a longer effective freshness).
RATIO_FLOOR = {"cond_per_window": 1.0}


def ratio(larder, peers, better, floor=None):
    """larder relative to the best peer, oriented so that > 1 means larder is better."""
    peers = [p for p in peers if p is not None]
    if floor is not None:
        peers = [max(p, floor) for p in peers]
        larder = None if larder is None else max(larder, floor)
    if better is None or larder is None or not peers:
        return "—"
    if better == "higher":
        best = max(peers)
        return f"{larder / best:.2f}" if best > 0 else "—"
    best = min(peers)
    if larder == 0:
        return "1.00" if best == 0 else "∞"
    return f"{best / larder:.2f}"


class Table:
    def __init__(self, products, scenarios):
        self.products = products  # names, in run order
        self.scenarios = scenarios
        self.notes = []  # footnote texts; a cell refers to one by number
        self.cell_notes = {}  # (scenario, product) -> [footnote numbers]

    def note(self, scenario, product, text):
        if text not in self.notes:
            self.notes.append(text)
        n = self.notes.index(text) + 1
        lst = self.cell_notes.setdefault((scenario, product), [])
        if n not in lst:
            lst.append(n)

    def render(self, runs):
        """runs: product -> scenario -> [Run dicts or None]. Returns (markdown, medians)."""
        has_larder = "larder" in self.products
        head = ["Scenario", "Metric"] + self.products
        if has_larder and len(self.products) > 1:
            head.append("larder vs best peer (>1 = larder better)")
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        medians = {}
        first_row_of = {}
        for i, (sc, _, key, _, _, _) in enumerate(ROWS):
            first_row_of.setdefault(sc, i)
        for i, (sc, slabel, key, mlabel, better, fmt) in enumerate(ROWS):
            if sc not in self.scenarios:
                continue
            cells, values = [], {}
            for p in self.products:
                v = aggregate(runs.get(p, {}).get(sc, []), key, fmt)
                values[p] = v
                medians.setdefault(p, {}).setdefault(sc, {})[key] = v
                text = fmt_value(v, fmt)
                marks = self.cell_notes.get((sc, p), [])
                if marks and (i == first_row_of[sc] or v is None):
                    text += " " + "".join(f"[{m}]" for m in marks)
                cells.append(text)
            row = [f"{sc}. {slabel}" if slabel else "", mlabel] + cells
            if has_larder and len(self.products) > 1:
                peers = [values[p] for p in self.products if p != "larder" and p not in REFERENCES]
                row.append(ratio(values["larder"], peers, better,
                                 RATIO_FLOOR.get(key)))
            out.append("| " + " | ".join(row) + " |")
        if self.notes:
            out.append("")
            for n, text in enumerate(self.notes, 1):
                out.append(f"[{n}] {text}")
        return "\n".join(out), medians
