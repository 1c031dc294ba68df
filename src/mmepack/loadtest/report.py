"""The load test's report: raw CSV, per-level CSV, a PNG plot, one self-contained HTML page and
a JSON summary, all in one folder.

The plot is the part people look at: latency percentiles and throughput against offered load,
with the chosen level marked, so the trade-off the threshold encodes is visible at a glance.
matplotlib draws it with the Agg backend (no display needed); the HTML page embeds the PNG as
base64, so the page is one file that can be attached to a ticket or a pull request.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmepack.loadtest.driver import COLD_LEVEL, Sample
from mmepack.loadtest.recommend import Recommendation, scaling_policy
from mmepack.loadtest.stats import ColdLoad, LevelStats

SAMPLES_CSV = "samples.csv"
LEVELS_CSV = "levels.csv"
SUMMARY_JSON = "summary.json"
PLOT_PNG = "latency_throughput.png"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class RunInfo:
    """What was tested, for the report's header."""

    endpoint: str  # how it was reached, in words
    endpoint_name: str
    variant: str
    local: bool
    mix: dict[str, float]
    seconds_per_level: float
    max_requests: int
    payloads: dict[str, str]


def _num(value: float, digits: int = 1) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def level_row(level: LevelStats) -> dict[str, Any]:
    return {
        "concurrency": level.concurrency,
        "requests": level.requests,
        "ok": level.ok,
        "errors": level.error_count,
        "errors_by_kind": ";".join(f"{k}={v}" for k, v in level.errors.items()),
        # Microseconds: a level of a dozen fast requests lasts a fraction of a second, and
        # throughput recomputed from a millisecond-rounded time was off by up to 0.13%.
        "elapsed_s": round(level.elapsed_s, 6),
        "throughput_per_s": round(level.throughput_per_s, 3),
        "invocations_per_minute": round(level.invocations_per_minute, 1),
        "warm": level.warm,
        "p50_ms": _num(level.p50_ms),
        "p90_ms": _num(level.p90_ms),
        "p99_ms": _num(level.p99_ms),
        "max_ms": _num(level.max_ms),
        # The endpoint's own time for the same requests (ModelLatency); empty where the endpoint
        # does not report it (SageMaker: see CloudWatch's ModelLatency).
        "server_p50_ms": _num(level.server_p50_ms),
        "server_p99_ms": _num(level.server_p99_ms),
        "cold": level.cold,
        "cold_max_ms": _num(level.cold_max_ms),
        "stuck_callers": level.stuck_callers,
        "hit_max_requests": int(level.hit_max_requests),
    }


def level_line(level: LevelStats) -> str:
    """One printed line per level: the client's latency beside the server's."""
    server = (
        f"; server (ModelLatency) p50 {level.server_p50_ms:.1f} ms, p99 "
        f"{level.server_p99_ms:.1f} ms"
        if not math.isnan(level.server_p50_ms)
        else "; server time not reported by this endpoint"
    )
    return (
        f"concurrency {level.concurrency}: {level.invocations_per_minute:.0f}/min, client p50 "
        f"{level.p50_ms:.1f} ms, p99 {level.p99_ms:.1f} ms{server}, {level.error_count} errors"
        + (" (ended at --max-requests)" if level.hit_max_requests else "")
    )


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], fields: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})


def plot_png(levels: Sequence[LevelStats], recommendation: Recommendation) -> bytes:
    """Latency percentiles (left axis) and throughput (right axis) against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    x = [lv.concurrency for lv in levels]
    for name, attr, style in (
        ("p50", "p50_ms", "-o"),
        ("p90", "p90_ms", "-s"),
        ("p99", "p99_ms", "-^"),
    ):
        axes.plot(x, [getattr(lv, attr) for lv in levels], style, label=f"{name} latency")
    if any(not math.isnan(lv.server_p50_ms) for lv in levels):
        axes.plot(
            x,
            [lv.server_p50_ms for lv in levels],
            ":o",
            color="tab:green",
            label="server p50 (ModelLatency)",
        )
    axes.axhline(
        recommendation.p99_target_ms,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"p99 target {recommendation.p99_target_ms:g} ms",
    )
    axes.set_xlabel("concurrent callers (offered load)")
    axes.set_ylabel("latency, warm requests (ms)")
    axes.set_xscale("log", base=2)
    axes.set_xticks(x, [str(v) for v in x])
    right = axes.twinx()
    right.plot(
        x,
        [lv.invocations_per_minute for lv in levels],
        "-D",
        color="tab:gray",
        label="throughput",
    )
    right.set_ylabel("invocations per minute")
    right.set_ylim(bottom=0)
    if recommendation.chosen is not None:
        chosen = recommendation.chosen
        right.plot(
            [chosen.concurrency],
            [chosen.invocations_per_minute],
            marker="*",
            markersize=18,
            color="gold",
            markeredgecolor="black",
            linestyle="none",
            label=f"chosen: {chosen.invocations_per_minute:.0f}/min at {chosen.concurrency}",
        )
        if recommendation.target_value is not None:
            right.axhline(
                recommendation.target_value * recommendation.instances,
                color="tab:purple",
                linestyle=":",
                linewidth=1,
                label=f"target value {recommendation.target_value}/min per instance",
            )
        axes.axvline(chosen.concurrency, color="gold", linewidth=6, alpha=0.3, zorder=0)
    handles = axes.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    axes.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left", fontsize=8)
    axes.set_title("Latency and throughput against offered load")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row.values())
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(
    info: RunInfo,
    levels: Sequence[LevelStats],
    cold: Sequence[ColdLoad],
    recommendation: Recommendation,
    apply_code: str,
    png: bytes,
    caveat: str | None,
) -> str:
    policy = (
        json.dumps(scaling_policy(recommendation.target_value), indent=2)
        if recommendation.target_value is not None
        else "(none)"
    )
    image = base64.b64encode(png).decode("ascii")
    cold_rows = [
        {
            "TargetModel": c.target,
            "outcome": c.outcome,
            "first request (ms)": round(c.latency_ms, 1),
            "endpoint's ModelLoadingWaitTime (ms)": (
                "" if c.load_wait_ms is None else round(c.load_wait_ms, 1)
            ),
        }
        for c in cold
    ]
    mix = ", ".join(f"{html.escape(t)} ({w:g})" for t, w in info.mix.items())
    warning = f'<p class="caveat">{html.escape(caveat)}</p>' if caveat else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mmepack load test: {html.escape(info.endpoint_name)}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }}
pre {{ background: #f4f4f4; padding: 0.8em; overflow-x: auto; }}
.caveat {{ background: #fff3cd; padding: 0.6em; border-left: 4px solid #e0a800; }}
.answer {{ font-size: 1.2em; }}
</style></head><body>
<h1>Load test: {html.escape(info.endpoint_name)} / {html.escape(info.variant)}</h1>
<p>{html.escape(info.endpoint)}. Traffic mix: {mix}. Each level: at most
{info.seconds_per_level:g} s and {info.max_requests} requests.</p>
{warning}
<p class="answer"><b>Recommendation:</b> {html.escape(recommendation.reason)}</p>
<img alt="latency percentiles and throughput against concurrency" src="data:image/png;base64,{image}">
<h2>Levels</h2>
<p>Latency percentiles are over warm successful requests; cold ones (a model loading) are
counted apart. Throughput counts every successful request. <code>p50_ms</code>..<code>max_ms</code>
are the caller's (client, connection and endpoint together); <code>server_p50_ms</code> and
<code>server_p99_ms</code> are the endpoint's own time for the same requests (its ModelLatency),
so the difference is time spent outside the model server.</p>
{_table([level_row(lv) for lv in levels])}
<h2>Cold loads: the first request to each model</h2>
{_table(cold_rows)}
<h2>Target-tracking policy</h2>
<pre>{html.escape(policy)}</pre>
<h2>How to apply it (not run by mmepack)</h2>
<pre>{html.escape(apply_code)}</pre>
</body></html>
"""


def write_report(
    out_dir: Path,
    info: RunInfo,
    cold_samples: Sequence[Sample],
    samples: Sequence[Sample],
    levels: Sequence[LevelStats],
    cold: Sequence[ColdLoad],
    recommendation: Recommendation,
    apply_code: str,
    caveat: str | None,
) -> dict[str, Path]:
    """Write every file; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "samples": out_dir / SAMPLES_CSV,
        "levels": out_dir / LEVELS_CSV,
        "summary": out_dir / SUMMARY_JSON,
        "plot": out_dir / PLOT_PNG,
        "html": out_dir / REPORT_HTML,
    }
    sample_fields = [
        "level",
        "target",
        "offset_s",
        "latency_ms",
        "outcome",
        "cold",
        "load_wait_ms",
        "server_latency_ms",
        "detail",
    ]
    _write_csv(
        paths["samples"],
        [
            {
                "level": s.level,
                "target": s.target,
                "offset_s": round(s.offset_s, 6),
                "latency_ms": round(s.latency_s * 1000, 3),
                "outcome": s.outcome,
                "cold": int(s.cold),
                "load_wait_ms": None if s.load_wait_s is None else round(s.load_wait_s * 1000, 3),
                "server_latency_ms": (
                    None if s.server_latency_s is None else round(s.server_latency_s * 1000, 3)
                ),
                "detail": s.detail,
            }
            for s in [*cold_samples, *samples]
        ],
        sample_fields,
    )
    rows = [level_row(lv) for lv in levels]
    _write_csv(paths["levels"], rows, list(level_row(levels[0])) if levels else ["concurrency"])
    png = plot_png(levels, recommendation)
    paths["plot"].write_bytes(png)
    paths["html"].write_text(
        render_html(info, levels, cold, recommendation, apply_code, png, caveat), encoding="utf-8"
    )
    summary = {
        "endpoint": info.endpoint,
        "endpoint_name": info.endpoint_name,
        "variant": info.variant,
        "local": info.local,
        "caveat": caveat,
        "mix": info.mix,
        "payloads": info.payloads,
        "seconds_per_level": info.seconds_per_level,
        "max_requests_per_level": info.max_requests,
        "cold_level": COLD_LEVEL,
        "cold_loads": [
            {
                "target": c.target,
                "outcome": c.outcome,
                "latency_ms": round(c.latency_ms, 3),
                "load_wait_ms": None if c.load_wait_ms is None else round(c.load_wait_ms, 3),
            }
            for c in cold
        ],
        "levels": [
            {**row, "errors_by_kind": lv.errors, "by_target": lv.by_target}
            for row, lv in zip(rows, levels)
        ],
        "recommendation": {
            "p99_target_ms": recommendation.p99_target_ms,
            "margin": recommendation.margin,
            "instances": recommendation.instances,
            "max_error_rate": recommendation.max_error_rate,
            "chosen_concurrency": (
                recommendation.chosen.concurrency if recommendation.chosen else None
            ),
            "measured_per_instance_per_minute": (
                None
                if recommendation.measured_per_instance_per_minute is None
                else round(recommendation.measured_per_instance_per_minute, 1)
            ),
            "target_value": recommendation.target_value,
            "knee_reached": recommendation.knee_reached if recommendation.chosen else None,
            "reason": recommendation.reason,
            "policy": (
                scaling_policy(recommendation.target_value)
                if recommendation.target_value is not None
                else None
            ),
        },
    }
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return paths
