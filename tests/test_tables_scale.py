"""The scale_reference table: this run's margins over bicubic beside the GPU paper-scale run's."""

import math

import pandas as pd
import pytest

from ssimsr.tables.registry import table_names
from ssimsr.tables.scale import load_reference, scale_reference


def _table1(preset_rows=True):
    rows = [("corrected", "photos", "sr", 0.0, 2, 31.0), ("corrected", "photos", "sr", 1.0, 2, 30.5),
            ("as_run", "photos", "sr", 0.0, 2, 20.0), ("corrected", "photos", "irn", 1.0, 2, 25.0),
            ("–", "photos", "bicubic", math.nan, math.nan, 31.25)]
    frame = pd.DataFrame(rows, columns=["preset", "dataset", "model", "lambda_s", "n_seeds", "psnr_end_mean"])
    return frame if preset_rows else frame[frame["preset"] != "as_run"].drop(columns="preset")


def test_margins_over_each_scales_bicubic_by_hand():
    table = scale_reference(_table1(), "corrected")
    got = table.data.set_index(["model", "lambda_s"])
    assert list(got.index) == [("irn", 1.0), ("sr", 0.0), ("sr", 1.0)]  # the preset's rows, no bicubic row
    assert got.loc[("sr", 0.0), "margin"] == pytest.approx(31.0 - 31.25)
    assert got.loc[("sr", 1.0), "margin"] == pytest.approx(30.5 - 31.25)
    # the H200 rows (benchmarks/gpu/h200-2026-11-26.md) and BSDS300 val bicubic 31.4466 dB
    assert got.loc[("sr", 0.0), "ref_psnr_end"] == pytest.approx(31.9789)
    assert got.loc[("sr", 0.0), "ref_margin"] == pytest.approx(31.9789 - 31.4466)
    assert got.loc[("sr", 1.0), "paper_psnr_end"] == pytest.approx(32.47)  # paper Table 1, BSDS300 SR
    assert got.loc[("irn", 1.0), "paper_psnr_end"] == pytest.approx(22.41)
    assert "NVIDIA H200" in table.caption and "7c3a814" in table.caption
    markdown = table.to_markdown()
    assert "GPU paper scale: PSNR (end)" in markdown and "-0.25" in markdown and "+0.53" in markdown


def test_a_single_preset_table1_and_a_model_the_reference_lacks():
    reference = load_reference()
    table = scale_reference(_table1(preset_rows=False), "corrected", reference[reference["model"] == "sr"])
    irn = table.data[table.data["model"] == "irn"].iloc[0]
    assert math.isnan(irn["ref_psnr_end"]) and irn["margin"] == pytest.approx(25.0 - 31.25)
    assert "n/a" in table.to_markdown()


def test_the_reference_is_written_for_every_report():
    assert "scale_reference" in table_names({})
