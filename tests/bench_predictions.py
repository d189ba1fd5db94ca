"""Benchmark (not a test): the predictor against every published row, decode and prefill error per row.

Run: .venv/bin/python tests/bench_predictions.py
Prints each calibration, held-out and not-comparable row (predicted, published, error), the held-out mean absolute
errors, and DGX Spark's prefill at each depth with the time to read a 32k-token prompt.
tests/test_throughput.py holds the same rows to their bounds.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from published_rows import (CALIBRATION, HELD_OUT, NOT_COMPARABLE, SPARK_DEPTHS, Row, decode_error,  # noqa: E402
                            mean_abs, predicted, prefill_at, prefill_error, published_prompt_seconds)


def _cell(published: float | None, error: float | None) -> str:
    return "" if published is None else f"{published:>8,.1f} {error:+7.1%}"


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n{title}\n{'machine, model':52} {'decode: published, error':>25} {'prefill: published, error':>25}")
    for row in rows:
        decode = _cell(row.decode, decode_error(row) if row.decode else None)
        prefill = _cell(row.prefill, prefill_error(row) if row.prefill else None)
        print(f"{row.label[:52]:52} {decode:>25} {prefill:>25}   {row.source}")


def print_depths() -> None:
    print("\nDGX Spark prefill by depth (pp2048 @ depth; SPARK)")
    gb10 = next(row for row in CALIBRATION if row.gpu == "NVIDIA GB10")
    for size, depths in SPARK_DEPTHS.items():
        prediction = predicted(Row(gb10.gpu, gb10.bandwidth_gbps, "nvidia", size, None, None, "SPARK"))
        cells = [f"d{d}: {prefill_at(prediction, d + 1024):,.0f} vs {rate:,.0f}" for d, rate in depths]
        published = published_prompt_seconds(depths, 32768)
        print(f"  {size}: " + "; ".join(cells))
        print(f"  {size}: a 32,768-token prompt: predicted {prediction.prompt_seconds(32768):.1f} s, "
              f"published rows give {published:.1f} s")


def main() -> None:
    print_rows("Calibration rows", CALIBRATION)
    print_rows("Held-out rows", HELD_OUT)
    print_rows("Not comparable (other harness or depth): shown, not bounded", NOT_COMPARABLE)
    decode = [decode_error(r) for r in HELD_OUT if r.decode]
    prefill = [prefill_error(r) for r in HELD_OUT if r.prefill]
    print(f"\nheld out: decode mean absolute error {mean_abs(decode):.1%} over {len(decode)} rows (max "
          f"{max(map(abs, decode)):.1%}); prefill {mean_abs(prefill):.1%} over {len(prefill)} rows (max "
          f"{max(map(abs, prefill)):.1%})")
    print_depths()


if __name__ == "__main__":
    main()
