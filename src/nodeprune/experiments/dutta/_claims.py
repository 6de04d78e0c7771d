"""Dutta & Mitra's Table 2 and the verdicts shared by dutta-digits and dutta-fashion (nodeprune's criteria)."""

from __future__ import annotations

import statistics
from typing import Any

from .._framework import Claim, Run

__all__ = ["CLAIMS", "TABLE2", "paper_value", "verdicts"]

# Table 2 (bigger CNN, Fashion-MNIST): the ten highest epochs of the 5-run mean test-accuracy curve, per row
TABLE2: dict[str, list[float]] = {
    "16": [0.91784, 0.91782, 0.9178, 0.9177, 0.9177, 0.91748, 0.91746, 0.91744, 0.91744, 0.91742],
    "16 (L)": [0.91966, 0.919, 0.91874, 0.9187, 0.91862, 0.91858, 0.91856, 0.91846, 0.91844, 0.91842],
    "16 (P)": [0.92016, 0.92012, 0.92004, 0.91996, 0.91996, 0.91994, 0.9199, 0.91964, 0.9196, 0.9196],
    "16 (P, L)": [0.92078, 0.92074, 0.92052, 0.9205, 0.9205, 0.92048, 0.92044, 0.92044, 0.9204, 0.92038],
    "32": [0.91936, 0.91918, 0.91916, 0.91912, 0.91908, 0.91904, 0.91902, 0.91892, 0.91886, 0.91884],
    "32 (L)": [0.91984, 0.91972, 0.91968, 0.91962, 0.9196, 0.91958, 0.91958, 0.91956, 0.91956, 0.91956],
    "32 (P)": [0.92142, 0.92134, 0.92134, 0.92128, 0.92122, 0.92122, 0.92116, 0.92112, 0.92112, 0.9211],
    "32 (P, L)": [0.92154, 0.92152, 0.92152, 0.9215, 0.92148, 0.92148, 0.92148, 0.92146, 0.92144, 0.92144],
    "64": [0.9205, 0.92038, 0.92018, 0.9201, 0.9201, 0.92006, 0.92002, 0.92002, 0.91984, 0.9198],
    "64 (L)": [0.91994, 0.91992, 0.91988, 0.91986, 0.91986, 0.91984, 0.91982, 0.91982, 0.91982, 0.9198],
    "64 (P)": [0.92002, 0.92002, 0.91998, 0.91998, 0.91998, 0.91994, 0.91994, 0.91994, 0.91992, 0.91986],
    "64 (P, L)": [0.92208, 0.92176, 0.92172, 0.9217, 0.92162, 0.9216, 0.92158, 0.92152, 0.92152, 0.92144],
    "128": [0.9226, 0.92242, 0.92238, 0.92236, 0.9223, 0.92228, 0.92226, 0.92224, 0.9222, 0.9222],
    "128 (L)": [0.92138, 0.92138, 0.92136, 0.92132, 0.92132, 0.92132, 0.92132, 0.92128, 0.92128, 0.92126],
    "128 (P)": [0.9201, 0.92008, 0.92006, 0.92004, 0.92004, 0.92004, 0.92, 0.91998, 0.91998, 0.91996],
    "128 (P, L)": [0.92288, 0.92258, 0.9224, 0.9222, 0.92218, 0.92216, 0.92216, 0.92214, 0.92212, 0.9221],
    "512(D)": [0.92262, 0.92256, 0.92254, 0.9224, 0.92226, 0.92214, 0.92206, 0.92204, 0.92204, 0.92196],
}
METRICS = {"top10": "mean of the top 10 epochs", "max_curve": "best epoch"}

CLAIMS = (
    Claim("DM-7", "A layer pruned to k nodes is at least as accurate as a fixed-width k layer.", "Tables 2–3"),
    Claim("DM-8", "Pruned nets end with a lower test loss than fixed-width nets.", "§3, §7.4, Figs. 3–8"),
    Claim("DM-9", "Pruning with LeakyReLU (P, L) is the best of the four rows at every width.", "§7.4, Table 2"),
    Claim("DM-10", "128 (P, L) is as accurate as FC-512 with dropout 0.5.", "Table 2"),
    Claim("DM-4", "Accuracy drops at a pruning event and recovers within a period.", "§7.3, Fig. 1"),
    Claim("DM-L", "With LeakyReLU the accuracy takes less of a hit at pruning events (after the first).", "§7.4"),
    Claim("DM-5", "Retention probabilities spread out during training and their median rises.", "§5 (implicit)"),
    Claim("DM-6", "The lowest-retention nodes are the least important ones.", "§5"),
)


def paper_value(config: str, metric: str) -> float | None:
    """Table 2's number for a row: its first (highest) value for ``max_curve``, the mean of ten for ``top10``."""
    values = TABLE2.get(config)
    if values is None:
        return None
    return values[0] if metric == "max_curve" else statistics.mean(values)


def _status(flags: list[bool]) -> str:
    return "reproduced" if flags and all(flags) else ("partly" if any(flags) else "not")


def _paper(configs: list[str], metric: str) -> str:
    shown = [f"{c}: {value:.4f}" for c in configs if (value := paper_value(c, metric)) is not None]
    return "; ".join(shown) + f" (Table 2, {METRICS[metric]})" if shown else "no such rows in Table 2"


def verdicts(ctx: Run, rows: list[dict[str, Any]], probes: list[dict[str, Any]], metric: str = "top10") -> None:
    """A verdict per claim of :data:`CLAIMS` (nodeprune's criteria, fixed before the runs); ``metric`` is the
    accuracy compared: ``"top10"`` (Table 2's, for long curves) or ``"max_curve"`` (its first column)."""
    by = {row["config"]: row for row in rows}
    pairs = []
    for row in rows:
        fixed = str(row["config"]).replace(" (P, L)", " (L)").replace(" (P)", "")
        if row["kind"] == "pruned" and fixed in by:
            pairs.append((row, by[fixed]))
    name = METRICS[metric]
    within = [p[metric] >= f[metric] - 0.01 for p, f in pairs]
    better = [p[metric] > f[metric] for p, f in pairs]
    in_paper = [
        (a, b) for p, f in pairs if (a := paper_value(p["config"], metric)) is not None
        and (b := paper_value(f["config"], metric)) is not None
    ]  # fmt: skip
    ctx.verdict(
        "DM-7",
        _status(within),
        f"non-inferiority: pruned ≥ fixed − 1 pp on the {name} of the seed-mean curve for every pair; "
        f"the paper's superiority (pruned > fixed) holds in {sum(better)} of {len(pairs)} pairs here, and in "
        f"{sum(a > b for a, b in in_paper)} of these {len(in_paper)} pairs in Table 2",
        paper=_paper([c for p, f in pairs for c in (f["config"], p["config"])], metric),
        ours="; ".join(f"{f['config']}: {f[metric]:.4f} vs {p['config']}: {p[metric]:.4f}" for p, f in pairs),
    )
    lower = [p["final_loss"] < f["final_loss"] for p, f in pairs]
    ctx.verdict(
        "DM-8",
        _status(lower),
        "final test loss of the pruned net below the fixed-width net's, for every pair",
        paper="pruned loss curves 'for the most part always lower' (Figs. 3–8; no numbers)",
        ours="; ".join(
            f"{f['config']}: {f['final_loss']:.4f} vs {p['config']}: {p['final_loss']:.4f}" for p, f in pairs
        ),
    )
    widths = sorted({row["width"] for row in rows if row["kind"] == "pruned"})
    quads = {k: [by.get(c) for c in (f"{k}", f"{k} (L)", f"{k} (P)", f"{k} (P, L)")] for k in widths}
    complete = {k: [r for r in quad if r is not None] for k, quad in quads.items() if None not in quad}
    best = [max(quad, key=lambda r: r[metric])["config"] == f"{k} (P, L)" for k, quad in complete.items()]
    ctx.verdict(
        "DM-9",
        _status(best) if complete else "not",
        f"the (P, L) row has the highest {name} of the four rows of its width, ties going to the other row ("
        "reported only; verdict: every width, some widths, none)"
        if complete
        else "not measured: this run has no LeakyReLU rows",
        paper="(P, L) best at 16, 32, 64, 128 (Table 2; by 0.01–0.2 pp)",
        ours="; ".join(
            f"{k}: best {max(q, key=lambda r: r[metric])['config']} ({', '.join(f'{r[metric]:.4f}' for r in q)})"
            for k, q in complete.items()
        ),
    )
    dropout = by.get("512(D)")
    target = by.get("128 (P, L)") or max((p for p, _ in pairs), key=lambda row: row[metric], default=None)
    if dropout is None or target is None:
        ctx.verdict(
            "DM-10", "not", "not measured: no 512(D) or pruned run", paper=_paper(["128 (P, L)", "512(D)"], metric)
        )
    else:
        ctx.verdict(
            "DM-10",
            "reproduced" if target[metric] >= dropout[metric] - 0.01 else "not",
            f"{target['config']} within 1 pp of 512(D) on the {name}"
            + ("" if target["config"] == "128 (P, L)" else "; 128 (P, L) was not run, the best pruned row stands in"),
            paper=_paper(["128 (P, L)", "512(D)"], metric),
            ours=f"{target['config']}: {target[metric]:.4f} vs 512(D): {dropout[metric]:.4f}",
        )
    recovered = [e["recovered"] >= e["before"] - 0.01 for e in probes]
    ctx.verdict(
        "DM-4",
        _status(recovered),
        "mean test accuracy one period after each event is at most 1 pp below the accuracy before it",
        paper="each event degrades performance, which soon recovers (§7.3, Fig. 1; no numbers)",
        ours="; ".join(_event(e) + f" {e['before']:.4f} → {e['low']:.4f} → {e['recovered']:.4f}" for e in probes),
    )
    drops = {
        a: {e["epoch"]: e["before"] - e["low"] for e in probes if e["activation"] == a} for a in ("relu", "leaky_relu")
    }
    later = sorted(set(drops["relu"]) & set(drops["leaky_relu"]))[1:]
    status = "not"
    if later:
        smaller = [drops["leaky_relu"][e] < drops["relu"][e] for e in later]
        on_average = statistics.mean(drops["leaky_relu"][e] for e in later) < statistics.mean(
            drops["relu"][e] for e in later
        )
        status = "reproduced" if all(smaller) else ("partly" if on_average else "not")
    ctx.verdict(
        "DM-L",
        status,
        "the accuracy lost at each event after the first (before − right after) is smaller with LeakyReLU than "
        "with ReLU at every such event; 'partly' when only on average"
        if later
        else "not measured: no LeakyReLU runs, or a single event",
        paper="with LeakyReLU, 'except in the initial stages, the accuracy doesn't take much of a hit' (§7.4)",
        ours="; ".join(
            f"e{e}: ReLU −{100 * drops['relu'][e]:.2f} pp, L −{100 * drops['leaky_relu'][e]:.2f} pp" for e in later
        ),
    )
    activations = list(dict.fromkeys(e["activation"] for e in probes))
    first = [min((e for e in probes if e["activation"] == a), key=_epoch) for a in activations]
    last = [max((e for e in probes if e["activation"] == a), key=_epoch) for a in activations]
    spread = bool(first) and all(e["p_max"] - e["p_min"] > 0.1 for e in first)
    rising = bool(first) and all(b["p_median"] > a["p_median"] and b is not a for a, b in zip(first, last, strict=True))
    ctx.verdict(
        "DM-5",
        "reproduced" if spread and rising else ("partly" if spread or rising else "not"),
        "p_max − p_min > 0.1 at the first event, and the median retention higher at the last event than at the first",
        paper="not measured in the paper; implied by 'the retention probability increases' (§5)",
        ours="; ".join(
            _event(e) + f" p {e['p_min']:.3f} / {e['p_median']:.3f} / {e['p_max']:.3f}" for e in [*first, *last]
        ),
    )
    ordered = [e["low"] >= e["random"] >= e["high"] for e in probes]
    firsts = [e["low"] >= e["random"] >= e["high"] for e in first]
    ctx.verdict(
        "DM-6",
        "reproduced" if ordered and all(ordered) else ("partly" if any(ordered) and all(firsts) else "not"),
        "removing the lowest-retention quota hurts less than a random one, which hurts less than the highest "
        "(low ≥ random ≥ high) at every event; 'partly' when it holds at the first event and some others",
        paper="lowest retention = least important (§5 hypothesis; never tested in the paper)",
        ours="; ".join(_event(e) + f" {e['low']:.4f} / {e['random']:.4f} / {e['high']:.4f}" for e in probes),
    )


def _epoch(entry: dict[str, Any]) -> float:
    return float(entry["epoch"])


def _event(entry: dict[str, Any]) -> str:
    short = "L" if entry["activation"] == "leaky_relu" else "ReLU"
    return f"{short} e{entry['epoch']}:"
