"""The streaming table of a compare report, on hand-made rows with hand-computed cells."""

from __future__ import annotations

from distill.report.stream_table import best_frr_within, stream_table_markdown, stream_table_rows


def _row(arm: str, seed: int, score: float, frr: tuple, latency: str) -> dict[str, str]:
    return {
        "student": "tc_resnet8", "arm": arm, "seed": str(seed), "test_score": str(score),
        "frr_at_0.1_fa_h": str(frr[0]), "frr_at_0.5_fa_h": str(frr[1]),
        "frr_at_1_fa_h": str(frr[2]), "stream_latency_median_s": latency,
        "stream_negative_hours": "5.13",
    }  # fmt: skip


def test_cells_are_mean_and_std_over_seeds_and_latency_over_detecting_seeds() -> None:
    rows = [
        _row("none", 0, 0.2, (1.0, 1.0, 1.0), ""),
        _row("none", 1, 0.3, (1.0, 1.0, 1.0), ""),
        _row("maxpool", 0, 0.5, (0.6, 0.4, 0.2), "0.3"),
        _row("maxpool", 1, 0.7, (0.8, 0.6, 0.4), "0.5"),
        _row("maxpool", 2, 0.6, (1.0, 1.0, 1.0), ""),
        {"student": "gru", "arm": "none", "seed": "0", "test_score": "0.1"},  # no metric: left out
    ]
    header, table = stream_table_rows(rows)
    assert header[3:6] == ["FRR at 0.1 FA/h (%)", "FRR at 0.5 FA/h (%)", "FRR at 1 FA/h (%)"]
    assert [r[:2] for r in table] == [["tc_resnet8", "none"], ["tc_resnet8", "maxpool"]]
    none, maxpool = table
    assert none[2] == "25.00 ± 7.07"  # mean 0.25, std sqrt(0.005) = 0.0707
    assert none[3:6] == ["100.0 ± 0.0"] * 3
    assert none[6] == "–"  # no seed detects anything at 0.5 FA/h
    assert maxpool[2] == "60.00 ± 10.00"
    assert maxpool[3] == "80.0 ± 20.0" and maxpool[4] == "66.7 ± 30.6"  # (0.4, 0.6, 1.0)
    assert maxpool[5] == "53.3 ± 41.6"  # (0.2, 0.4, 1.0): std 0.4163
    assert maxpool[6] == "0.40 ± 0.14 (2 of 3 seeds)"
    assert maxpool[7:] == ["3", "5.13"]


def test_no_streaming_metric_no_section() -> None:
    assert stream_table_markdown([{"student": "s", "arm": "none", "test_score": "0.5"}]) == ""
    text = stream_table_markdown([_row("none", 0, 0.5, (1.0, 0.5, 0.25), "0.2")])
    assert text.startswith("### Streaming metric")
    assert "| tc_resnet8 | none | 50.00 ± 0.00 | 100.0 ± 0.0 | 50.0 ± 0.0 | 25.0 ± 0.0 |" in text


def test_best_frr_within_a_budget_is_the_lower_envelope_of_the_sweep() -> None:
    # A sweep whose lowest threshold fires once per stream (few false accepts, no hit): the
    # operating-point rule would stop there; the envelope takes the best FRR within the budget.
    curve = {"fa_per_hour": [11.7, 2500.0, 80.0, 9.0, 0.0], "frr": [1.0, 0.5, 0.8, 0.9, 1.0]}
    assert best_frr_within(curve, 10.0) == 0.9
    assert best_frr_within(curve, 100.0) == 0.8
    assert best_frr_within(curve, 1e4) == 0.5
    assert best_frr_within({"fa_per_hour": [20.0], "frr": [0.3]}, 10.0) == 1.0  # none within


def test_curves_add_the_loose_budget_columns_per_arm() -> None:
    rows = [_row("none", 0, 0.2, (1.0, 1.0, 1.0), ""), _row("none", 1, 0.3, (1.0, 1.0, 1.0), "")]
    curves = {"tc_resnet8": [
        {"arm": "none", "seed": "0", "fa_per_hour": [5.0, 50.0], "frr": [0.9, 0.7]},
        {"arm": "none", "seed": "1", "fa_per_hour": [5.0, 50.0], "frr": [1.0, 0.5]},
        {"arm": "logit", "seed": "0", "fa_per_hour": [5.0], "frr": [0.0]},  # no such row
    ]}  # fmt: skip
    header, table = stream_table_rows(rows, curves)
    assert header[6:8] == ["best FRR within 10 FA/h (%)", "best FRR within 100 FA/h (%)"]
    assert table[0][6] == "95.0 ± 7.1"  # (0.9, 1.0)
    assert table[0][7] == "60.0 ± 14.1"  # (0.7, 0.5)
    assert len(table) == 1 and table[0][-2:] == ["2", "5.13"]
