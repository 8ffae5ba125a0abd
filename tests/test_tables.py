"""Tables: bold = best per group in .tex/.md, plain CSV, Table 1 aggregation, published values."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import scipy.stats

from ssimsr.config import defaults, fill_defaults
import pandas as pd
import pytest
from scipy import stats as sps

from ssimsr import tables as T
from ssimsr.analysis import stats as S

from ssimsr.analysis.stats import compare_variants

#: The studies of Table 1 and A2: the schema's defaults (the tables take them from the config).
REPORT = defaults("report")

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "paper.txt"


# ----------------------------------------------------------------------------- parsing helpers

def _tex_body(tex: str) -> list[list[str]]:
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    rows = [r.strip() for r in body.strip().split(r"\\") if r.strip()]
    return [[c.strip() for c in r.split(" & ")] for r in rows]


def _md_body(md: str) -> tuple[list[str], list[list[str]]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    split = lambda ln: [c.strip() for c in ln.strip().strip("|").split("|")]  # noqa: E731
    return split(lines[0]), [split(ln) for ln in lines[2:]]


def _bold_cells_tex(rows):
    return {(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c.startswith(r"\textbf{")}


def _bold_cells_md(rows):
    return {(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c.startswith("**") and c.endswith("**")}


# ----------------------------------------------------------------------------- write_table / best_mask

def test_write_table_bolds_exactly_the_best_per_group(tmp_path):
    df = pd.DataFrame({
        "dataset": ["a", "a", "a", "b", "b", "b"],
        "lambda_s": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0],
        "total": [0.30, 0.10, 0.20, 0.05, 0.05, 0.07],   # lower better; tie in group b
        "psnr": [30.123, 31.5, 29.0, 25.0, 24.0, 26.25],  # higher better
        "ssim": [0.9, 0.8, np.nan, 0.7, 0.71, 0.69],      # NaN never best
    })
    # independent expectation, by hand: (row, column name)
    expected = {(1, "total"), (3, "total"), (4, "total"), (1, "psnr"), (5, "psnr"), (0, "ssim"), (4, "ssim")}
    mask = T.best_mask(df, ["dataset"], ["total", "psnr", "ssim"], {"total": False, "psnr": True, "ssim": True})
    assert {(i, c) for c in mask.columns for i in mask.index if mask.at[i, c]} == expected

    paths = T.write_table(df, tmp_path / "sub" / "t", "A caption with λ_s & 50 %", bold=mask, label="tab:t")
    cols = list(df.columns)
    want = {(i, cols.index(c)) for i, c in expected}

    tex = paths["tex"].read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\label{tab:t}" in tex and r"$\lambda_s$ \& 50 \%" in tex
    rows = _tex_body(tex)
    assert len(rows) == 6 and all(len(r) == 5 for r in rows)
    assert _bold_cells_tex(rows) == want
    assert rows[0][3] == "30.12" and rows[0][2] == "0.3000"   # PSNR 2 decimals, losses 4
    assert rows[1][3] == r"\textbf{31.50}"

    header, mrows = _md_body(paths["md"].read_text())
    assert header[1] == "λ_s"
    assert _bold_cells_md(mrows) == want

    text = paths["csv"].read_text()
    assert "*" not in text and "textbf" not in text and "±" not in text
    back = pd.read_csv(paths["csv"])
    pd.testing.assert_frame_equal(back, df)
    assert not list(tmp_path.glob("sub/.*tmp*"))


def test_best_mask_rounding_and_row_subset():
    df = pd.DataFrame({"g": [1, 1, 1], "v": [0.12341, 0.12339, 0.5], "stage": ["end", "end", "start"]})
    m = T.best_mask(df, ["g"], ["v"], {"v": False}, decimals=4)
    assert m["v"].tolist() == [True, True, False]          # print the same -> both bold
    m = T.best_mask(df, ["g"], ["v"], True, rows=df["stage"] == "end")
    assert m["v"].tolist() == [True, False, False]          # 0.5 is not a candidate


def test_mean_sd_pairs_collapse_and_bold_carries_over(tmp_path):
    df = pd.DataFrame({"model": ["sr", "irn"], "ssim_mean": [0.91, 0.85], "ssim_sd": [0.012, np.nan],
                       "p_paired": [3.2e-8, 0.0421]})
    bold = T.best_mask(df, [], ["ssim_mean"], True)
    paths = T.write_table(df, tmp_path / "pm", "pm", bold=bold)
    header, rows = _md_body(paths["md"].read_text())
    assert header == ["Model", "SSIM", "p_paired"]
    assert rows[0][1] == "**0.9100 ± 0.0120**" and rows[1][1] == "0.8500"
    assert rows[0][2] == "3.20e-08" and rows[1][2] == "0.042100"
    assert r"\textbf{0.9100 $\pm$ 0.0120}" in paths["tex"].read_text()
    assert list(pd.read_csv(paths["csv"]).columns) == ["model", "ssim_mean", "ssim_sd", "p_paired"]


def test_tex_escape():
    assert T.tex_escape("a_b & 5% #1 {x} λ_s ± −1 ≈ 2 p < 0.05") == (
        r"a\_b \& 5\% \#1 \{x\} $\lambda_s$ $\pm$ $-$1 $\approx$ 2 p $<$ 0.05")


# ----------------------------------------------------------------------------- Table 1

def _history(values: dict, epochs: int = 3) -> pd.DataFrame:
    """values[(lambda_s, seed)] = (val rows by epoch: list of (total, bw_mse, psnr, ssim))."""
    rows = []
    for (lam, seed), per_epoch in values.items():
        for e, (total, bw, psnr, ssim) in enumerate(per_epoch, start=1):
            common = dict(study="table1", preset="corrected", model="sr", dataset="bsds300", lambda_s=lam,
                          seed=seed, vgg="b4c4-b5c4", vgg_layers="block4_conv4+block5_conv4", epochs=epochs,
                          dataset_size=250, epoch=e, fw_mse=0.0, perceptual=0.0, ssim_n=0.0, seconds=10.0)
            rows.append(dict(common, split="val", total=total, bw_mse=bw, psnr=psnr, ssim=ssim))
            # train rows carry different numbers: they must not leak into the table
            rows.append(dict(common, split="train", total=99.0, bw_mse=99.0, psnr=-1.0, ssim=-1.0))
        # epoch 0 (validation of the initial weights): never "start" nor "end"
        rows.append(dict(common, epoch=0, split="val", total=50.0, bw_mse=50.0, psnr=-5.0, ssim=-5.0))
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # row order must not matter


def test_table1_two_seeds_mean_sd(tmp_path):
    vals = {
        (0.0, 0): [(0.10, 0.010, 20.0, 0.50), (0.08, 0.008, 21.0, 0.55), (0.06, 0.006, 24.0, 0.60)],
        (0.0, 1): [(0.14, 0.012, 22.0, 0.54), (0.09, 0.009, 22.5, 0.57), (0.04, 0.004, 26.0, 0.70)],
        (1.0, 0): [(0.20, 0.020, 19.0, 0.70), (0.15, 0.015, 20.0, 0.72), (0.12, 0.012, 23.0, 0.80)],
        (1.0, 1): [(0.22, 0.018, 19.5, 0.72), (0.16, 0.014, 20.5, 0.74), (0.10, 0.010, 23.5, 0.84)],
    }
    t = T.table1(_history(vals), study=REPORT["table1_study"])
    d = t.data.set_index("lambda_s")
    r2 = math.sqrt(2.0)
    # hand-computed: mean and sd (ddof=1) of two values a, b: (a+b)/2 and |a-b|/sqrt(2)
    assert d.at[0.0, "psnr_start_mean"] == pytest.approx(21.0)
    assert d.at[0.0, "psnr_start_sd"] == pytest.approx(2.0 / r2)
    assert d.at[0.0, "psnr_end_mean"] == pytest.approx(25.0)
    assert d.at[0.0, "psnr_end_sd"] == pytest.approx(2.0 / r2)
    assert d.at[0.0, "total_end_mean"] == pytest.approx(0.05)
    assert d.at[0.0, "total_end_sd"] == pytest.approx(0.02 / r2)
    assert d.at[1.0, "ssim_start_mean"] == pytest.approx(0.71)
    assert d.at[1.0, "ssim_end_mean"] == pytest.approx(0.82)
    assert d.at[1.0, "ssim_end_sd"] == pytest.approx(0.04 / r2)
    assert d.at[1.0, "bw_mse_start_mean"] == pytest.approx(0.019)
    assert d.at[1.0, "bw_mse_end_mean"] == pytest.approx(0.011)
    assert (d["n_seeds"] == 2).all() and (d["epochs"] == 3).all() and (d["dataset_size"] == 250).all()
    # bold: best end value per (dataset, model): lower total/bwMSE -> ls0; higher PSNR -> ls0; SSIM -> ls1
    b = t.bold.set_index(t.data["lambda_s"])
    assert b.at[0.0, "total_end_mean"] and not b.at[1.0, "total_end_mean"]
    assert b.at[0.0, "psnr_end_mean"] and b.at[1.0, "ssim_end_mean"] and not b.at[0.0, "ssim_end_mean"]
    assert not b["psnr_start_mean"].any()
    # rendering: "mean ± sd"
    header, rows = _md_body(t.to_markdown())
    col = header.index("PSNR (end)")
    assert rows[0][col] == "**25.00 ± 1.41**"

    per_seed = T.table1(_history(vals), seeds_agg=False, study=REPORT["table1_study"]).data
    assert len(per_seed) == 4 and "psnr_end" in per_seed.columns
    assert per_seed.loc[(per_seed.lambda_s == 1.0) & (per_seed.seed == 1), "psnr_end"].item() == 23.5


def test_table1_single_seed_shows_plain_mean(tmp_path):
    vals = {(0.0, 0): [(0.1, 0.01, 20.0, 0.5), (0.05, 0.005, 25.0, 0.6)],
            (2.0, 0): [(0.3, 0.02, 18.0, 0.6), (0.2, 0.010, 23.0, 0.7)]}
    t = T.table1(_history(vals, epochs=2), study=REPORT["table1_study"])
    assert t.data["psnr_end_sd"].isna().all()
    paths = t.write(tmp_path / "t1")
    header, rows = _md_body(paths["md"].read_text())
    assert rows[0][header.index("PSNR (end)")] == "**25.00**"
    assert "±" not in paths["md"].read_text().split("|", 1)[1]


def test_table1_stops_on_an_unfinished_run_unless_allowed():
    vals = {(0.0, 0): [(0.1, 0.01, 20.0, 0.5), (0.05, 0.005, 25.0, 0.6)],
            (0.0, 1): [(0.1, 0.01, 20.0, 0.5)] * 5}
    hist = _history(vals, epochs=5)
    with pytest.raises(T.IncompleteRun, match=r"run .*/ls0/.*/seed0: history.csv has 2 of 5 epochs") as err:
        T.table1(hist, study=REPORT["table1_study"])
    assert "\n" not in str(err.value) and "allow_incomplete_runs" in str(err.value)
    t = T.table1(hist, allow_incomplete=True, study=REPORT["table1_study"])
    assert t.data["n_incomplete"].tolist() == [1]
    assert t.data["psnr_end_mean"].iloc[0] == pytest.approx((25.0 + 20.0) / 2)  # its last logged epoch
    assert any("seed 0 (epoch 2 of 5)" in n for n in t.notes)
    complete = T.table1(_history({(0.0, 0): [(0.1, 0.01, 20.0, 0.5)] * 5}, epochs=5), study=REPORT["table1_study"])
    assert "n_incomplete" not in complete.data and not complete.notes


def test_loss_shares_start_at_epoch_0_and_end_by_hand(tmp_path):
    run = dict(study="table1", preset="corrected", model="sr", dataset="bsds300", vgg="b4c4-b5c4",
               lambda_b=1.0, lambda_f=1.0, lambda_p=1.0, perceptual_norm="relative", psnr=20.0, ssim=0.5,
               seconds=1.0)
    # (lambda_s, seed): {epoch: (bw_mse, fw_mse, perceptual, ssim_n)} of the val rows
    values = {(1.0, 0): {0: (0.2, 0.1, 0.4, 0.3), 1: (9, 9, 9, 9), 2: (0.01, 0.01, 0.05, 0.03)},
              (1.0, 1): {0: (0.3, 0.1, 0.4, 0.2), 1: (9, 9, 9, 9), 2: (0.01, 0.01, 0.05, 0.03)},
              (0.0, 0): {0: (0.001, 0.001, 0.5, 0.3), 2: (0.001, 0.001, 0.05, 0.02)},
              (2.0, 0): {1: (0.1, 0.1, 0.1, 0.1), 2: (0.01, 0.02, 0.03, 0.01)}}  # trained before epoch 0
    rows = []
    for (lam, seed), epochs in values.items():
        for epoch, (bw, fw, perc, ssim_n) in epochs.items():
            terms = dict(bw_mse=bw, fw_mse=fw, perceptual=perc, ssim_n=ssim_n)
            rows.append(dict(run, lambda_s=lam, seed=seed, epoch=epoch, split="val", **terms,
                             total=bw + fw + perc + lam * ssim_n))
            if epoch:  # train rows must not leak in
                rows.append(dict(run, lambda_s=lam, seed=seed, epoch=epoch, split="train", bw_mse=1e6,
                                 fw_mse=0.0, perceptual=0.0, ssim_n=0.0, total=1e6))
    t = T.loss_shares(pd.DataFrame(rows).sample(frac=1.0, random_state=2), study=REPORT["table1_study"])
    d = t.data.set_index(["lambda_s", "stage"])
    assert list(t.data.stage[t.data.lambda_s == 1.0]) == ["start", "end"]
    assert d.at[(1.0, "start"), "epoch"] == 0 and d.at[(1.0, "end"), "epoch"] == 2
    # seed 0 start: 0.2 / 1.0 etc.; seed 1: 0.3 / 1.0: mean 0.25, sd 0.1 / sqrt(2)
    assert d.at[(1.0, "start"), "share_bw_mse_mean"] == pytest.approx(0.25)
    assert d.at[(1.0, "start"), "share_bw_mse_sd"] == pytest.approx(0.1 / math.sqrt(2))
    assert d.at[(1.0, "start"), "share_perceptual_mean"] == pytest.approx(0.4)
    assert d.at[(1.0, "end"), "share_perceptual_mean"] == pytest.approx(0.5)
    assert d.at[(1.0, "start"), "top_ratio_mean"] == pytest.approx(0.4 / 0.6)
    # lambda_s = 0: SSIM_N is not weighted; L_perc 0.5 over 0.002 is 250x the rest
    assert math.isnan(d.at[(0.0, "start"), "share_ssim_n_mean"])
    assert d.at[(0.0, "start"), "share_perceptual_mean"] == pytest.approx(0.5 / 0.502)
    assert d.at[(0.0, "start"), "top_ratio_mean"] == pytest.approx(250.0)
    # lambda_s = 2: no epoch-0 row, only the end (epoch 2: 2 x 0.01 of 0.08)
    assert list(t.data.stage[t.data.lambda_s == 2.0]) == ["end"]
    assert d.at[(2.0, "end"), "share_ssim_n_mean"] == pytest.approx(0.02 / 0.08)
    assert any("no epoch-0 row" in n and "lambda_s 2.0" in n for n in t.notes)
    md = t.write(tmp_path / "shares")["md"].read_text()
    header, body = _md_body(md)
    assert "L_perc share" in header and "Largest / rest" in header
    assert body[t.data.index[(t.data.lambda_s == 0.0) & (t.data.stage == "start")][0]][
        header.index("L_SSIM_N share")] == "n/a"
    assert "40.0 %" in md and "epoch 0" in md
    with pytest.raises(ValueError, match=r"loss_shares: history lacks columns \['lambda_b'"):
        T.loss_shares(pd.DataFrame(rows).drop(columns="lambda_b"), study=REPORT["table1_study"])


def test_table_a2_stages_time_and_labels():
    rows = []
    for vgg, lam, base in [("b4c4-b5c4", 1.0, 0.1), ("b3c2-b4c4", 0.0, 0.2), ("b3c2-b4c4", 1.0, 0.3)]:
        for e in (1, 2):
            common = dict(study="appendix_a", preset="corrected", model="irn", dataset="div2k", lambda_s=lam,
                          seed=0, vgg=vgg, vgg_layers=vgg, epochs=2, dataset_size=800, epoch=e)
            rows.append(dict(common, split="train", total=9, bw_mse=9, fw_mse=9, perceptual=9, ssim_n=9,
                             psnr=9, ssim=9, seconds=100.0 * e))
            rows.append(dict(common, split="val", total=base / e, bw_mse=base / 10 / e, fw_mse=0.001,
                             perceptual=0.5 / e, ssim_n=0.05, psnr=20 + 5 * e + base, ssim=0.5 + base, seconds=1.0))
    t = T.table_a2(pd.DataFrame(rows), study=REPORT["appendix_study"])
    d = t.data
    assert d["experiment"].tolist() == ["E1", "E1", "E7", "E7", "E8", "E8"]
    assert d["stage"].tolist() == ["start", "end"] * 3 and d["epoch"].tolist() == [1, 2] * 3
    assert (d["training_time_s_mean"] == 300.0).all()            # 100 + 200 s of train rows
    e7_end = d[(d.experiment == "E7") & (d.stage == "end")].iloc[0]
    assert e7_end["total_mean"] == pytest.approx(0.15) and e7_end["psnr_mean"] == pytest.approx(30.3)
    # bold among end rows per lambda_s: lambda 1 -> E1 (total 0.05 < 0.15); lambda 0 alone -> E8
    b = t.bold
    assert b.loc[(d.experiment == "E1") & (d.stage == "end"), "total_mean"].item()
    assert not b.loc[(d.experiment == "E7") & (d.stage == "end"), "total_mean"].item()
    assert b.loc[(d.experiment == "E8") & (d.stage == "end"), "total_mean"].item()
    assert not b.loc[d.stage == "start"].any().any()
    assert "0:05:00" in t.to_markdown()
    cmp = T.paper_vs_ours(t, table="table_a2")
    e1 = cmp.data[(cmp.data.experiment == "E1") & (cmp.data.stage == "end") & (cmp.data.quantity == "psnr")]
    assert e1["paper"].item() == 25.23 and e1["diff"].item() == pytest.approx(30.1 - 25.23)


def test_paper_vs_ours_table_a2_compares_as_run_runs_with_every_layer_row():
    """The paper's A2 runs had the perceptual term at 0: ours are the as_run runs (one per
    lambda_s and seed), beside each of the paper's four layer rows per lambda_s; DIV2K's split
    is shared (SD 0), so only the seeds count."""
    from ssimsr.tables.registry import TableInputs, _paper_vs_ours_table_a2

    rows = []
    for lam in (0.0, 1.0):
        for seed, shift in ((0, 0.0), (1, 0.3), (2, -0.1)):
            for e in (1, 2):
                common = dict(study="appendix_a", preset="as_run", model="irn", dataset="div2k", lambda_s=lam,
                              seed=seed, vgg="b4c4-b5c4", vgg_layers="block4_conv4+block5_conv4", epochs=2,
                              dataset_size=800, epoch=e)
                rows.append(dict(common, split="train", total=9, bw_mse=9, fw_mse=9, perceptual=0, ssim_n=9, psnr=9,
                                 ssim=9, seconds=100.0))
                rows.append(dict(common, split="val", total=0.05, bw_mse=0.003, fw_mse=0.0002, perceptual=0.0,
                                 ssim_n=0.05, psnr=24 + e + shift, ssim=0.85, seconds=1.0))
    history = pd.DataFrame(rows)
    report = fill_defaults(dict(table1_study="appendix_a", appendix_study="appendix_a"), "report")
    inputs = TableInputs(history, pd.DataFrame(columns=["set", "image"]), pd.DataFrame(), report,
                         splits={"div2k": "by_source"})
    table = _paper_vs_ours_table_a2(inputs)
    psnr_end = table.data[(table.data.quantity == "psnr") & (table.data.stage == "end")]
    assert sorted(psnr_end["experiment"]) == ["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8"]
    ours = history.query("split == 'val' and epoch == 2 and lambda_s == 1").psnr
    e1 = psnr_end[psnr_end.experiment == "E1"].iloc[0]
    assert e1["ours"] == pytest.approx(ours.mean()) and e1["n_seeds"] == 3 and e1["split_sd"] == 0.0
    assert e1["s"] == pytest.approx(np.sqrt(ours.var(ddof=1) * (1 + 1 / 3) + 0.01 ** 2 / 12))
    assert e1["df"] == pytest.approx(2.0, abs=1e-3) and e1["agreement"] in ("within noise", "differs")
    assert "four replicate runs" in table.caption and "split SD is 0" in table.caption
    # without as_run runs: the paper's values alone, saying why
    alone = _paper_vs_ours_table_a2(TableInputs(history.assign(preset="corrected"), inputs.per_image,
                                                inputs.comparisons, report))
    assert "no as_run run in the appendix study" in alone.to_markdown()


# ----------------------------------------------------------------------------- Tables 2 / 3

def _comparisons(rng, seeds=(0, 1, 2), n_images=50) -> pd.DataFrame:
    """What `ssimsr stats` writes for one group: 3 seeds x 50 images, LPIPS vgg unavailable."""
    rows = []
    for seed in seeds:
        run_shift = {lam: rng.normal(0, 0.3) for lam in (1, 2)}
        for lam in (1, 2):
            for i in range(n_images):
                rows.append(dict(lambda_s=lam, seed=seed, image=f"i{i:02d}",
                                 psnr=30 + 0.05 * i + 1.5 * (lam == 1) + run_shift[lam] + rng.normal(0, 1.0),
                                 ssim=0.8 + 0.001 * (lam == 1) + rng.normal(0, 0.05),
                                 lpips_alex=0.5 + rng.normal(0, 0.05), lpips_squeeze=0.5 + rng.normal(0, 0.05),
                                 lpips_vgg=np.nan, lpips_vgg_status="unavailable: no vgg weights offline"))
    df = compare_variants(pd.DataFrame(rows), list(T.STATS_METRICS), "lambda_s", 1, 2)
    df.insert(0, "comparison", "ls1_vs_ls2")
    for col, v in [("vgg", "b4c4-b5c4"), ("dataset", "bsds300"), ("model", "sr"), ("preset", "corrected"),
                   ("study", "table1")]:
        df.insert(0, col, v)
    return df


def test_table_stats_layout(tmp_path):
    comp = _comparisons(np.random.default_rng(3))
    t = T.table_stats(comp, "sr", "bsds300", "ls1_vs_ls2")
    psnr = comp.set_index("metric").loc["psnr"]
    d = t.data.set_index(["test", "statistic"])
    assert d.loc[(T.WELCH_BLOCK, "t_welch"), "psnr"] == psnr["t_welch"]
    assert d.loc[(T.WELCH_BLOCK, "df_welch"), "psnr"] == psnr["df_welch"]
    assert d.loc[(T.PAIRED_BLOCK, "cohens_dz"), "psnr"] == psnr["cohens_dz"]
    assert d.loc[(T.SEED_BLOCK, "p_seed"), "psnr"] == psnr["p_seed"]
    np.testing.assert_equal(d.loc[(T.SEED_BLOCK, "mde_seed"), "psnr"], psnr["mde_seed"])
    assert np.isnan(d.loc[(T.WELCH_BLOCK, "t_welch"), "lpips_vgg"])
    assert list(t.data.columns[3:]) == list(T.STATS_METRICS)
    assert list(dict.fromkeys(t.data["test"])) == [T.SEED_BLOCK, T.WELCH_BLOCK, T.PAIRED_BLOCK]

    paths = t.write(tmp_path / "table2")
    md = paths["md"].read_text()
    header, rows = _md_body(md)
    assert header[2:] == ["LPIPS alex", "LPIPS squeeze", "LPIPS vgg", "PSNR", "SSIM"]
    by_block = {(r[0], r[1]): r for r in rows}
    seed_t = by_block[(T.SEED_BLOCK, "t statistic (df)")]
    assert seed_t[5] == f"{psnr['t_seed']:.4f} (df = 2)"
    welch_t = by_block[(T.WELCH_BLOCK, "t statistic (df)")]
    assert welch_t[5] == f"{psnr['t_welch']:.4f} (df ≈ {psnr['df_welch']:.2f})"
    assert welch_t[4] == "unavailable"
    assert "no vgg weights offline" in md
    assert by_block[(T.PAIRED_BLOCK, "t statistic (df)")][5].endswith("(df = 49)")
    p_row = by_block[(T.WELCH_BLOCK, "p-value")]
    p_text = T.format_value(psnr["p_welch"], "p_welch")
    assert p_row[5] == (f"**{p_text}**" if psnr["p_welch"] < 0.05 else p_text)
    # n and its unit for every block; never seeds x images
    assert "n = 3 seeds (unit: the training run)" in t.caption
    assert t.caption.count("n = 50 images") == 2 and "150" not in md
    tex = paths["tex"].read_text()
    assert r"(df $\approx$" in tex and r"\toprule" in tex
    with pytest.raises(ValueError, match="no rows with comparison == 'ls1_vs_ls0'"):
        T.table_stats(comp, "sr", "bsds300", "ls1_vs_ls0")
    two = pd.concat([comp, comp.assign(preset="as_run")])
    with pytest.raises(ValueError, match="preset"):
        T.table_stats(two, "sr", "bsds300", "ls1_vs_ls2")
    assert len(T.table_stats(two, "sr", "bsds300", "ls1_vs_ls2", preset="as_run").data) == 24


def test_stats_vs_paper_uses_welch_block():
    comp = _comparisons(np.random.default_rng(4))
    t = T.table_stats(comp, "sr", "bsds300", "ls1_vs_ls2")
    cmp = T.paper_vs_ours(t, table="table2").data
    row = cmp[(cmp.metric == "psnr") & (cmp.quantity == "df_welch")].iloc[0]
    assert row["paper"] == 83.49
    assert row["ours"] == comp.set_index("metric").at["psnr", "df_welch"]


# ----------------------------------------------------------------------------- Table 4 / verdict

def _per_image(values, images=("img_a", "img_b"), set_name="showcase", seeds=(0,)):
    rows = []
    for seed in seeds:
        for lam, per_img in values.items():
            for img, (lp, ps, ss) in zip(images, per_img):
                rows.append(dict(study="table1", preset="corrected", model="sr", dataset="bsds300",
                                 lambda_s=lam, seed=seed, vgg="b4c4-b5c4", set=set_name, image=img,
                                 psnr=ps + seed, ssim=ss, psnr_y=ps, ssim_y=ss, lpips_alex=lp,
                                 lpips_squeeze=lp * 2, lpips_vgg=np.nan, lpips_alex_status="ok",
                                 lpips_squeeze_status="ok", lpips_vgg_status="unavailable: offline"))
    return pd.DataFrame(rows)


def test_table4_bold_best_per_image_and_metric(tmp_path):
    vals = {0.0: [(0.02, 38.8, 0.980), (0.05, 33.0, 0.908)],
            1.0: [(0.01, 38.5, 0.985), (0.05, 28.5, 0.915)],
            2.0: [(0.03, 34.4, 0.980), (0.06, 27.6, 0.912)]}
    t = T.table4(_per_image(vals))
    paths = t.write(tmp_path / "t4")
    header, rows = _md_body(paths["md"].read_text())
    assert header == ["Metric", "λ_s", "img_a", "img_b"]
    bold = {(r[0], r[1], header[j]) for r in rows for j, c in enumerate(r) if c.startswith("**")}
    assert bold == {("lpips_alex", "1", "img_a"), ("lpips_alex", "0", "img_b"), ("lpips_alex", "1", "img_b"),
                    ("lpips_squeeze", "1", "img_a"), ("lpips_squeeze", "0", "img_b"),
                    ("lpips_squeeze", "1", "img_b"), ("psnr", "0", "img_a"), ("psnr", "0", "img_b"),
                    ("ssim", "1", "img_a"), ("ssim", "1", "img_b")}
    psnr0 = [r for r in rows if r[0] == "psnr" and r[1] == "0"][0]
    assert psnr0[2] == "**38.8000**"                          # 4 decimals as the paper's Table 4
    assert all(r[2] == "n/a" for r in rows if r[0] == "lpips_vgg")
    assert "unavailable: offline" in paths["md"].read_text()


def _verdict_per_image(gains=((0, 0.01), (1, 0.03), (2, 0.02)), lambdas=(0.0, 1.0, 2.0)):
    imgs = [f"v{i}" for i in range(6)]
    base = np.random.default_rng(0).uniform(0.8, 0.9, len(imgs))
    rows = []
    for seed, gain in gains:
        for lam, add in zip(lambdas, (0.0, gain, gain / 2)):
            for i, (img, b) in enumerate(zip(imgs, base)):
                noise = 0.001 * ((i % 3) - 1) * (seed + 1) if lam != lambdas[0] else 0.0
                rows.append(dict(study="table1", preset="corrected", model="sr", dataset="bsds300", lambda_s=lam,
                                 seed=seed, vgg="b4c4-b5c4", set="val", image=img, ssim=b + add + noise,
                                 psnr=30.0 - 10 * add + noise))
    return pd.DataFrame(rows)


def _verdict(per_image, pairs=None, **kwargs):
    """The verdict of ``per_image`` from its comparisons (the stats rule's), as the tables job reads them."""
    pairs = S.DEFAULT_PAIRS if pairs is None else pairs
    return T.verdict(per_image, S.compare_studies(per_image, pairs=pairs), pairs, **{'study': REPORT['table1_study'], **kwargs})


def test_verdict_seed_is_the_unit_and_paper_delta():
    pi = _verdict_per_image()
    t = _verdict(pi)
    v = t.data.set_index("comparison")
    # per-seed mean difference (1 vs 0) is the seed's gain (the noise averages to 0 over images)
    per_seed = np.array([0.01, 0.03, 0.02])
    assert v.at["ls1_vs_ls0", "dssim_mean"] == pytest.approx(per_seed.mean())
    assert v.at["ls1_vs_ls0", "dssim_sd"] == pytest.approx(per_seed.std(ddof=1))
    assert v.at["ls1_vs_ls0", "p_ssim"] == pytest.approx(sps.ttest_1samp(per_seed, 0.0).pvalue)
    assert math.isnan(v.at["ls1_vs_ls0", "mde_ssim"])  # 3 seeds: no honest detectable difference
    # image level: per-image differences averaged over the seeds, n = 6 images
    a = pi[pi.lambda_s == 1.0].groupby("image").ssim.mean()
    b = pi[pi.lambda_s == 0.0].groupby("image").ssim.mean()
    assert v.at["ls1_vs_ls0", "pimg_ssim"] == pytest.approx(sps.ttest_rel(a, b.loc[a.index]).pvalue)
    assert v.at["ls1_vs_ls2", "dssim_mean"] == pytest.approx(0.01)
    assert v.at["ls1_vs_ls0", "paper_dssim"] == pytest.approx(0.9309 - 0.929)   # published Table 1
    assert v.at["ls1_vs_ls0", "paper_dpsnr"] == pytest.approx(32.47 - 33.15)
    assert v.at["ls1_vs_ls2", "paper_dpsnr"] == pytest.approx(32.47 - 29.74)
    assert v.at["ls1_vs_ls0", "agree_ssim"] == 1.0 and v.at["ls1_vs_ls0", "agree_psnr"] == 1.0
    assert v.at["ls1_vs_ls0", "n_seeds"] == 3 and v.at["ls1_vs_ls0", "n_images"] == 6
    # three seeds that disagree by 0.01: p = 0.074 at the seed level although every image gains
    assert v.at["ls1_vs_ls0", "p_ssim"] > 0.05 and v.at["ls1_vs_ls0", "pimg_ssim"] < 1e-4
    assert "SSIM higher (n.s.)" in v.at["ls1_vs_ls0", "verdict"]
    tight = _verdict(_verdict_per_image(gains=((0, 0.02), (1, 0.021), (2, 0.019)))).data
    assert "SSIM higher (p < 0.05)" in tight.set_index("comparison").at["ls1_vs_ls0", "verdict"]
    assert list(v.index) == ["ls1_vs_ls0", "ls1_vs_ls2"]  # the configured order
    assert "n = 3 seeds; unit: the training run" in t.caption and "n = 6 images" in t.caption
    assert "18" not in t.caption  # never seeds x images
    assert t.notes == []


def test_verdict_keys_are_checked_by_the_statistics_it_reads():
    pi = _verdict_per_image()
    lost = pi.drop(index=pi[(pi.lambda_s == 2.0) & (pi.seed == 1) & (pi.image == "v4")].index)
    with pytest.raises(ValueError, match=r"unpaired rows.*v4"):
        _verdict(lost)
    with pytest.raises(ValueError, match="several rows"):
        _verdict(pd.concat([pi, pi.iloc[:1]]))


def test_verdict_reads_the_comparisons_instead_of_recomputing_them():
    pi = _verdict_per_image()
    comparisons = S.compare_studies(pi)
    shifted = comparisons.assign(mean_diff=comparisons["mean_diff"] + 1.0, p_seed=0.5)
    v = T.verdict(pi, shifted, study=REPORT["table1_study"]).data.set_index("comparison")
    ours = comparisons.query("metric == 'ssim' and comparison == 'ls1_vs_ls0'").iloc[0]
    assert v.at["ls1_vs_ls0", "dssim_mean"] == ours["mean_diff"] + 1.0 and v.at["ls1_vs_ls0", "p_ssim"] == 0.5
    assert v.at["ls1_vs_ls0", "n_seeds"] == ours["n_seeds"] and v.at["ls1_vs_ls0", "n_images"] == ours["n"]
    with pytest.raises(ValueError, match=r"ls1_vs_ls2 of .*model=sr.*rerun the stats rule"):
        T.verdict(pi, comparisons[comparisons.comparison != "ls1_vs_ls2"], study=REPORT["table1_study"])


def test_verdict_configured_pairs_any_lambdas_missing_pair_noted(tmp_path):
    pi = _verdict_per_image(lambdas=(0.5, 1.5, 3.0))
    t = _verdict(pi, pairs=[[1.5, 0.5], [1, 2]])
    assert list(t.data["comparison"]) == ["ls1.5_vs_ls0.5"]
    assert np.isnan(t.data.at[0, "paper_dssim"])  # the paper has no λ_s 1.5
    assert len(t.notes) == 1 and "λ_s 1 vs 2" in t.notes[0] and "0.5, 1.5, 3" in t.notes[0]
    none = _verdict(pi, pairs=[[1, 0]])
    assert none.data.empty and "λ_s 1 vs 0" in none.notes[0]
    paths = none.write(tmp_path / "verdict")  # an empty verdict still renders, with its note
    assert "λ_s 1 vs 0" in paths["md"].read_text()
    one_seed = _verdict(pi[pi.seed == 0], pairs=[[1.5, 0.5]]).data
    assert one_seed.at[0, "n_seeds"] == 1 and np.isnan(one_seed.at[0, "p_ssim"])
    assert "one seed: no run-level test" in one_seed.at[0, "verdict"]


# ----------------------------------------------------------------------------- published values

def test_published_table1_spot_checks():
    t1 = T.load_published("table1")
    assert len(t1) == 18 and set(t1["dataset"]) == {"div2k", "bsds300", "general100"}
    assert set(t1["model"]) == {"sr", "irn"} and t1["source"].str.startswith("paper Table 1").all()
    row = t1[(t1.dataset == "bsds300") & (t1.model == "irn") & (t1.lambda_s == 1)].iloc[0]
    assert row["total_start"] == 0.1119 and row["ssim_end"] == 0.8991 and row["epochs"] == 30
    row = t1[(t1.dataset == "div2k") & (t1.model == "sr") & (t1.lambda_s == 0)].iloc[0]
    assert row["psnr_end"] == 34.07 and row["dataset_size"] == 800
    assert t1.groupby(["dataset", "model"]).size().eq(3).all()


def test_published_stats_tables():
    t2 = T.load_published("table2").set_index("statistic")
    assert t2.at["t_welch", "psnr"] == 4.2626 and t2.at["df_welch", "psnr"] == 83.49
    assert t2.at["ci_low_welch", "lpips_alex"] == -0.0174        # the "−0.0174 0.0212" typo cell
    assert t2.at["p_welch", "psnr"] == 0.000053 and t2.at["cohens_d_pooled", "psnr"] == 0.8525
    t3 = T.load_published("table3").set_index("statistic")
    assert t3.at["mean_diff", "psnr"] == -0.1201 and t3.at["df_welch", "ssim"] == 97.98
    assert set(t2.index) <= set(S.STAT_KEYS) and set(t3.index) <= set(S.STAT_KEYS)
    with pytest.raises(ValueError, match="unknown table"):
        T.load_published("table9")


def _paper_lines():
    if not PAPER.exists():
        pytest.skip("shared/paper/paper.txt not available")
    return PAPER.read_text(encoding="utf-8").splitlines()


def _num(s: str) -> float:
    return float(s.replace("−", "-"))


def test_published_table1_matches_paper_text():
    names = {"BSDS300": "bsds300", "DIV2K_1000": "div2k", "General100": "general100"}
    rows = [ln.split("\t") for ln in _paper_lines() if ln.split("\t")[0] in names]
    assert len(rows) == 18
    pub = T.load_published("table1")
    cols = ["dataset_size", "epochs", "lambda_s", "total_start", "total_end", "bw_mse_start", "bw_mse_end",
            "psnr_start", "psnr_end", "ssim_start", "ssim_end"]
    for r, (_, p) in zip(rows, pub.iterrows()):
        assert (names[r[0]], r[1].lower()) == (p["dataset"], p["model"])
        assert [_num(x) for x in r[2:]] == [float(p[c]) for c in cols]


def test_published_table4_and_a2_match_paper_text():
    lines = _paper_lines()
    t4 = T.load_published("table4")
    got = []
    for ln in lines:
        m = re.match(r"(lpips_\w+|PSNR|SSIM)_ \$\\lambda_s = (\d)\$\t(.*)", ln)
        if m:
            got.append((m.group(1).lower(), int(m.group(2)), [_num(x) for x in m.group(3).split("\t")]))
    assert len(got) == 15
    for (metric, lam, vals), (_, p) in zip(got, t4.iterrows()):
        assert (metric, lam) == (p["metric"], p["lambda_s"])
        assert vals == [p[f"fig{i}"] for i in range(4, 10)]
    a2 = T.load_published("table_a2")
    rows = {}
    for ln in lines:
        m = re.match(r"(E\d): epoch(\d+)\t\t(.*)", ln)
        if m:
            cells = m.group(3).rstrip("\t").split("\t")
            rows[(m.group(1), int(m.group(2)))] = [None if x == "N/A" else _num(x) for x in cells]
    assert len(rows) == 16 == len(a2)
    for _, p in a2.iterrows():
        want = rows[(p["experiment"], p["epoch"])]
        have = [p[c] for c in ("bw_mse", "perceptual", "fw_mse", "ssim_n", "total", "psnr", "ssim")]
        assert [None if pd.isna(x) else x for x in have] == want
    times = {m.group(1): m.group(2) for ln in lines if (m := re.match(r"(E\d): settings\t(\d+:\d+)\t", ln))}
    assert {e: t for e, t in zip(a2["experiment"], a2["training_time"])} == times


def test_paper_tables_spell_loss_terms_as_the_registry():
    """One spelling per loss term (issue 25): Table 1, Table A2 and the published values name
    a term as the registry does (``bw_mse``, not the paper's ``bwmse``); its header is the label."""
    from ssimsr import registry
    from ssimsr.tables.render import METRIC_LABELS, header_label

    terms = set(registry.loss_terms())
    assert set(T.TABLE1_METRICS) <= terms | set(METRIC_LABELS) and "bw_mse" in T.TABLE1_METRICS
    assert set(T.A2_METRICS) == terms | {"total", "psnr", "ssim"}
    t1, a2 = T.load_published("table1"), T.load_published("table_a2")
    assert {c.rsplit("_", 1)[0] for c in t1.columns if c.endswith(("_start", "_end"))} == set(T.TABLE1_METRICS)
    assert set(T.A2_METRICS) <= set(a2.columns)
    paper_spellings = {"bwmse", "fwmse", "perc"}
    assert not paper_spellings & ({c.rsplit("_", 1)[0] for c in t1.columns} | set(a2.columns))
    assert (header_label("bw_mse_start"), header_label("perceptual")) == ("bwMSE (start)", "L_perc")


def test_published_stats_match_paper_text():
    lines = _paper_lines()
    t_rows = [ln for ln in lines if ln.startswith("T-statistic\t")]
    assert len(t_rows) == 2
    for ln, name in zip(t_rows, ("table2", "table3")):
        pub = T.load_published(name).set_index("statistic")
        cells = ln.split("\t")[1:]
        for cell, metric in zip(cells, T.STATS_METRICS):
            m = re.match(r"(\S+) \(df \\approx ([\d.]+)\)", cell)
            assert _num(m.group(1)) == pub.at["t_welch", metric]
            assert float(m.group(2)) == pub.at["df_welch", metric]


def test_paper_vs_ours_table1_differences():
    pub = T.load_published("table1")
    ours = pub.drop(columns=["source"]).copy()
    ours.loc[0, "psnr_end"] += 1.0
    cmp = T.paper_vs_ours(ours).data
    assert len(cmp) == 18 * 8
    assert cmp["diff"].abs().max() == pytest.approx(1.0)
    hit = cmp[cmp["diff"].abs() > 1e-12]
    assert len(hit) == 1 and hit.iloc[0]["quantity"] == "psnr_end"


# ----------------------------------------------------------------------------- report.build_tables

def _study_frames(lambdas=(0.0, 1.0, 2.0), presets=("corrected", "as_run"), seeds=(0, 1)):
    """history and per_image of a small study (sr on bsds300) as `ssimsr collect` writes them."""
    rng = np.random.default_rng(9)
    hist, per_image = [], []
    for preset in presets:
        for lam in lambdas:
            for seed in seeds:
                run = dict(study="table1", preset=preset, model="sr", dataset="bsds300", lambda_s=lam, seed=seed,
                           vgg="b4c4-b5c4")
                shift = (0.5 if preset == "as_run" else 0.0) + 0.1 * lam
                weights = dict(lambda_b=1.0, lambda_f=0.0 if preset == "as_run" else 1.0, lambda_p=0.0,
                               perceptual_norm="relative")
                hist.append(dict(run, epoch=0, split="val", total=0.9, bw_mse=0.3, fw_mse=0.2, perceptual=0.0,
                                 ssim_n=0.4, psnr=5.0, ssim=0.01, seconds=1.0, epochs=2, dataset_size=4, **weights))
                for epoch in (1, 2):
                    for split in ("train", "val"):
                        hist.append(dict(run, epoch=epoch, split=split, total=0.1 / epoch, bw_mse=0.01 / epoch,
                                         fw_mse=0.0, perceptual=0.0, ssim_n=0.05, psnr=30 + shift + epoch,
                                         ssim=0.9 + shift / 100, seconds=10.0, epochs=2, dataset_size=4,
                                         **weights))
                for set_name, images in (("val", [f"v{i}" for i in range(5)]), ("showcase", ["cat"])):
                    for img in images:
                        per_image.append(dict(run, set=set_name, image=img, psnr=30 + shift + rng.normal(0, 0.1),
                                              ssim=0.9 + shift / 100 + rng.normal(0, 0.001), lpips_alex=np.nan,
                                              lpips_alex_status="unavailable: offline"))
    return pd.DataFrame(hist), pd.DataFrame(per_image)


def _build(tmp_path, history, per_image, **report):
    from ssimsr.tables import build_tables, table_names

    report = dict(dict(table1_study="table1", appendix_study=None, stats=dict(model="sr", dataset="bsds300",
                                                                            study="table1"),
                       showcase_model="sr", showcase_dataset="bsds300"), **report)
    comparisons = S.compare_studies(per_image, pairs=report.get("comparisons", S.DEFAULT_PAIRS))
    written = build_tables(history, per_image, comparisons, report, tmp_path)
    assert {p.stem for p in written} == set(table_names(report))
    return {p.name: p for p in written}


def test_build_tables_paper_vs_ours_from_as_run_with_corrected_beside(tmp_path):
    history, per_image = _study_frames()
    files = _build(tmp_path, history, per_image)
    t1 = pd.read_csv(files["paper_vs_ours_table1.csv"])
    row = t1[(t1.lambda_s == 1.0) & (t1.quantity == "psnr_end")].iloc[0]
    pub = T.load_published("table1").query("dataset == 'bsds300' and model == 'sr' and lambda_s == 1").iloc[0]
    as_run = history.query("preset == 'as_run' and lambda_s == 1 and split == 'val' and epoch == 2").psnr.mean()
    corrected = history.query("preset == 'corrected' and lambda_s == 1 and split == 'val' and epoch == 2").psnr.mean()
    assert row["paper"] == pub["psnr_end"]
    assert row["ours_as_run"] == pytest.approx(as_run) and row["diff_as_run"] == pytest.approx(as_run - pub["psnr_end"])
    assert row["ours_corrected"] == pytest.approx(corrected)
    start = t1[(t1.lambda_s == 1.0) & (t1.quantity == "psnr_start")].iloc[0]
    epoch1 = history.query("preset == 'as_run' and lambda_s == 1 and split == 'val' and epoch == 1").psnr.mean()
    assert start["ours_as_run"] == pytest.approx(epoch1)  # epoch 1, never the epoch-0 row
    shares = pd.read_csv(files["loss_shares.csv"])
    s0 = shares.query("preset == 'as_run' and lambda_s == 2 and stage == 'start'").iloc[0]
    # as_run: lambda_f = 0, so bwMSE 0.3 and 2 x SSIM_N 0.8 share the total 1.1
    assert s0.share_bw_mse_mean == pytest.approx(0.3 / 1.1) and s0.share_ssim_n_mean == pytest.approx(0.8 / 1.1)
    assert s0.epoch == 0 and math.isnan(s0.share_fw_mse_mean) and "share_perceptual_mean" not in shares
    assert "L_perc has weight 0 in every run shown" in files["loss_shares.md"].read_text()
    md = files["paper_vs_ours_table1.md"].read_text()
    assert "Ours (as_run, the paper's setting)" in md and "Ours (corrected, all losses on)" in md
    t2 = pd.read_csv(files["paper_vs_ours_table2.csv"]).set_index(["metric", "quantity"])
    comp = S.compare_studies(per_image).query("preset == 'as_run' and comparison == 'ls1_vs_ls2'")
    assert t2.at[("psnr", "t_welch"), "ours_as_run"] == pytest.approx(comp.set_index("metric").at["psnr", "t_welch"])
    assert t2.at[("psnr", "t_welch"), "paper"] == 4.2626
    # Table 4 like for like: per-image contrasts (lambda_s 1 - 0 on the same image), seeds averaged
    t4 = pd.read_csv(files["paper_vs_ours_table4.csv"]).set_index(["preset", "metric", "contrast"])
    cat = per_image.query("set == 'showcase' and preset == 'as_run'").pivot_table(
        index="seed", columns="lambda_s", values="psnr")
    row = t4.loc[("as_run", "psnr", "λ_s 1 − 0")]
    assert row["ours"] == pytest.approx((cat[1.0] - cat[0.0]).mean())
    assert row["ours_sd"] == pytest.approx((cat[1.0] - cat[0.0]).std(ddof=1))
    paper4 = T.load_published("table4").query("metric == 'psnr'").set_index("lambda_s")
    figs = [c for c in paper4.columns if c.startswith("fig")]
    assert row["paper"] == pytest.approx((paper4.loc[1, figs] - paper4.loc[0, figs]).mean())
    assert pd.isna(row["agreement"])  # "n/a": one showcase image gives no image-sampling SD of ours
    verdict = files["verdict.md"].read_text()
    assert "n = 2 seeds; unit: the training run" in verdict and "n = 5 images" in verdict
    table2 = files["table2.md"].read_text()
    assert "n = 2 seeds" in table2 and "n = 5 images" in table2 and "n = 10" not in table2


def test_build_tables_other_lambdas_and_missing_presets(tmp_path):
    history, per_image = _study_frames(lambdas=(0.5, 1.5), presets=("corrected",))
    files = _build(tmp_path, history, per_image, comparisons=[[1.5, 0.5]])
    verdict = pd.read_csv(files["verdict.csv"])
    assert list(verdict.comparison) == ["ls1.5_vs_ls0.5"]
    table2 = files["table2.md"].read_text()
    assert "λ_s 1 vs 2 (the paper's Table 2) was not compared" in table2 and "ls1.5_vs_ls0.5" in table2
    assert "ours: unavailable (as_run: preset 'as_run' was not run)" in files["paper_vs_ours_table1.md"].read_text()
    t4 = files["paper_vs_ours_table4.md"].read_text()  # no paper contrast (1 - 0, 1 - 2) among 0.5 / 1.5
    assert "as_run: table4: no rows with preset == 'as_run'" in t4
    assert "corrected: table4_contrasts: no showcase rows with both λ_s of a paper contrast" in t4
    stats_md = files["stats_all.md"].read_text()
    assert "ls1.5_vs_ls0.5" in stats_md


# ----------------------------------------------------------------------------- paper vs ours: within noise?

def test_paper_vs_ours_table1_z_and_verdict_by_hand(tmp_path):
    """z = (ours − paper) / s with s from the seeds' SD and the split-sampling SD of the
    per-image values (50-of-N formula by hand); one seed: no verdict."""
    from ssimsr.tables import build_tables

    history, per_image = _study_frames(lambdas=(0.0, 1.0))
    # seed 1 ends 0.4 dB above seed 0: an SD across seeds
    history.loc[(history.seed == 1) & (history.epoch == 2), "psnr"] += 0.4
    report = dict(table1_study="table1", appendix_study=None, comparisons=[[1, 0]],
                  stats=dict(model="sr", dataset="bsds300", study="table1"), showcase_model="sr",
                  showcase_dataset="bsds300")
    comparisons = S.compare_studies(per_image, pairs=[[1, 0]])
    build_tables(history, per_image, comparisons, report, tmp_path, splits={"bsds300": "random"})
    t1 = pd.read_csv(tmp_path / "paper_vs_ours_table1.csv")
    row = t1[(t1.lambda_s == 0.0) & (t1.quantity == "psnr_end")].iloc[0]
    ours = history.query("preset == 'as_run' and lambda_s == 0 and split == 'val' and epoch == 2").psnr
    vals = per_image.query("preset == 'as_run' and lambda_s == 0 and set == 'val'")
    n, population = 5, 4 + 5  # 5 val images drawn from 4 train + 5 val
    split = np.sqrt(np.mean([g.psnr.std(ddof=1) ** 2 * (1 - n / population) / n for _, g in vals.groupby("seed")]))
    rounding = 0.01 ** 2 / 12  # the paper prints 28.02: two decimals
    s = np.sqrt(ours.std(ddof=1) ** 2 * (1 + 1 / 2) + 2 * split ** 2 + rounding)
    paper = T.load_published("table1").query("dataset == 'bsds300' and model == 'sr' and lambda_s == 0").psnr_end.item()
    assert row["s_as_run"] == pytest.approx(s)
    assert row["z_as_run"] == pytest.approx((ours.mean() - paper) / s)
    assert row["critical_as_run"] == pytest.approx(scipy.stats.t.ppf(0.975, row["df_as_run"]))
    assert 1.0 <= row["df_as_run"] <= 4.0 + 1e-9  # between the seeds' 1 df and the split's 4
    assert row["low_as_run"] == pytest.approx(row["diff_as_run"] - row["critical_as_run"] * s)
    differs = abs(row["diff_as_run"]) > row["critical_as_run"] * s
    assert row["agreement_as_run"] == ("differs" if differs else "inconclusive" if row["df_as_run"] < 2
                                       else "within noise")
    md = (tmp_path / "paper_vs_ours_table1.md").read_text()
    assert "95 % interval (as_run)" in md and "±" in md and "finite-population" in md
    assert "Multiplicity:" in md
    # a split both sides share (official lists): only the seeds count
    build_tables(history, per_image, comparisons, report, tmp_path, splits={"bsds300": "iids"})
    same = pd.read_csv(tmp_path / "paper_vs_ours_table1.csv")
    same = same[(same.lambda_s == 0.0) & (same.quantity == "psnr_end")].iloc[0]
    assert same["s_as_run"] == pytest.approx(np.sqrt(ours.std(ddof=1) ** 2 * 1.5 + rounding))
    assert same["df_as_run"] == pytest.approx(1.0, abs=1e-4)  # the seeds' only: two seeds, one df
    # one seed: no SD across seeds, no verdict
    one = history[history.seed == 0]
    build_tables(one, per_image[per_image.seed == 0], S.compare_studies(per_image[per_image.seed == 0], pairs=[[1, 0]]),
                 report, tmp_path, splits={"bsds300": "random"})
    single = pd.read_csv(tmp_path / "paper_vs_ours_table1.csv")
    assert set(single["agreement_as_run"]) == {"one seed: no noise estimate"}


def test_paper_vs_ours_total_is_the_authors_validation_total(tmp_path):
    history, per_image = _study_frames(lambdas=(0.0, 1.0))
    history["fw_mse"] = 0.002  # logged at validation even where lambda_f = 0 (as_run)
    files = _build(tmp_path, history, per_image, comparisons=[[1, 0]])
    t1 = pd.read_csv(files["paper_vs_ours_table1.csv"])
    row = t1[(t1.lambda_s == 1.0) & (t1.quantity == "total_end")].iloc[0]
    end = history.query("preset == 'as_run' and lambda_s == 1 and split == 'val' and epoch == 2")
    assert row["ours_as_run"] == pytest.approx((end.bw_mse + 0.002 + 1.0 * end.ssim_n).mean())
    assert "as the authors' validation computed it" in files["paper_vs_ours_table1.md"].read_text()


def test_paper_vs_ours_stats_use_the_authors_convention_and_mean_diff_noise(tmp_path):
    history, per_image = _study_frames(lambdas=(0.0, 1.0, 2.0))
    per_image["psnr_authors"] = per_image["psnr"] - 0.5 + 0.01 * per_image["seed"]
    per_image["ssim_authors"] = per_image["ssim"] + 0.01
    files = _build(tmp_path, history, per_image)
    comparisons = S.compare_studies(per_image)
    t3 = pd.read_csv(files["paper_vs_ours_table3.csv"]).set_index(["metric", "quantity"])
    ours = comparisons.query("preset == 'as_run' and comparison == 'ls1_vs_ls0' and metric == 'psnr_authors'").iloc[0]
    assert t3.at[("psnr", "mean_diff"), "ours_as_run"] == pytest.approx(ours["mean_diff"])
    # a contrast: ours the mean of k paired per-seed differences, the paper's two independent runs
    fpc = (1 - 5 / 9) / 5
    split_diff = ours["sd_diff"] * np.sqrt(fpc)
    rows = per_image.query("preset == 'as_run' and set == 'val' and lambda_s in (0, 1)")
    split = np.sqrt(np.mean([g.psnr_authors.std(ddof=1) ** 2 * fpc for _, g in rows.groupby(["seed", "lambda_s"])]))
    pooled2 = rows.groupby(["lambda_s", "seed"]).psnr_authors.mean().groupby(level="lambda_s").var(ddof=1).mean()
    rounding = 0.0001 ** 2 / 12  # the paper prints -0.1201
    s = np.sqrt(ours["sd_seed_diff"] ** 2 / 2 + 2 * pooled2 + split_diff ** 2 + 2 * split ** 2 + rounding)
    assert t3.at[("psnr", "mean_diff"), "s_as_run"] == pytest.approx(s)
    assert t3.at[("psnr", "t_welch"), "agreement_as_run"] == "n/a: no noise model for this statistic"
    assert "authors' inference convention" in files["paper_vs_ours_table3.md"].read_text()


# ============================================================================= issue 15: benchmarks and origins
# (tables/benchmarks.py: the Set5 / Set14 table beside the bicubic baseline; results by image origin)

def _bench_frames(seeds=(0, 1)):
    """per_image with val rows (two origins) and set5 rows, and the matching baseline rows."""
    rows = []
    origins = {"v0": "BSDS300/images/test", "v1": "BSDS300/images/test", "v2": "BSDS300/images/train"}
    for preset in ("as_run", "corrected"):
        for lam in (0.0, 1.0):
            for seed in seeds:
                run = dict(study="table1", preset=preset, model="sr", dataset="bsds300", lambda_s=lam, seed=seed,
                           vgg="b4c4-b5c4")
                for img, origin in origins.items():
                    base = 30.0 + (1.0 if origin.endswith("train") else 0.0) + lam + seed * 0.5
                    rows.append(dict(run, set="val", image=img, origin=origin, psnr=base, ssim=0.9,
                                     psnr_y=base + 2, ssim_y=0.92))
                for k, img in enumerate(("img_001", "img_002")):
                    rows.append(dict(run, set="set5", image=img, origin=".", psnr=33.0, ssim=0.95,
                                     psnr_y=34.0 + lam + seed + k, ssim_y=0.96))
                rows.append(dict(run, set="showcase", image="cat", origin=np.nan, psnr=1.0, ssim=0.1,
                                 psnr_y=1.0, ssim_y=0.1))
    baseline = pd.DataFrame(
        [dict(dataset="bsds300", set="val", image=img, origin=o, psnr=28.0 + (1.0 if o.endswith("train") else 0.0),
              ssim=0.85, psnr_y=29.0, ssim_y=0.86) for img, o in origins.items()]
        + [dict(dataset="set5", set="set5", image=img, origin=".", psnr=31.0, ssim=0.9, psnr_y=32.0 + k, ssim_y=0.93)
           for k, img in enumerate(("img_001", "img_002"))])
    return pd.DataFrame(rows), baseline


def test_benchmarks_table_mean_sd_over_seeds_with_the_bicubic_row():
    from ssimsr.tables.benchmarks import benchmarks_table

    per_image, baseline = _bench_frames()
    table = benchmarks_table(per_image, baseline, ["set5"], study=REPORT["table1_study"])
    data = table.data
    bic = data[data.method == "bicubic"].iloc[0]
    assert data.iloc[0].method == "bicubic" and bic.benchmark == "set5" and bic.n_images == 2
    assert bic.psnr_y_mean == pytest.approx(32.5) and math.isnan(bic.psnr_y_sd)
    row = data[(data.method == "sr") & (data.preset == "as_run") & (data.lambda_s == 1.0)].iloc[0]
    # per run: mean over the 2 images (34 + 1 + seed + 0.5); over seeds 0, 1: 35.5 and 36.5
    assert row.psnr_y_mean == pytest.approx(36.0) and row.psnr_y_sd == pytest.approx(np.std([35.5, 36.5], ddof=1))
    assert row.n_seeds == 2 and row.n_images == 2 and row.dataset == "bsds300"
    assert len(data) == 1 + 4  # bicubic + 2 presets x 2 lambda_s; val and showcase rows never enter
    md = table.to_markdown()
    assert "| set5 " in md and "bicubic" in md and "36.00 ± 0.71" in md and "Trained on" in md
    assert "n/a" not in md  # the bicubic row's run columns read as a dash
    # the benchmarks may also be inferred from the image sets present
    assert benchmarks_table(per_image, baseline, None, study=REPORT["table1_study"]).data.equals(data)


def test_benchmarks_table_without_benchmarks_is_empty_with_a_note():
    from ssimsr.tables.benchmarks import benchmarks_table

    per_image, baseline = _bench_frames()
    table = benchmarks_table(per_image[per_image.set == "val"], baseline[baseline.set == "val"], [], study=REPORT["table1_study"])
    assert table.data.empty and "No benchmark is configured" in table.notes[0]
    table = benchmarks_table(per_image[per_image.set == "val"], baseline, ["set5", "set14"], study=REPORT["table1_study"])
    notes = " ".join(table.notes)
    assert "set5: no run was evaluated on it" in notes and "set14: no bicubic baseline rows" in notes
    assert list(table.data.method) == ["bicubic"]


def test_by_origin_table_splits_val_results_and_baseline_by_origin():
    from ssimsr.tables.benchmarks import by_origin_table

    per_image, baseline = _bench_frames()
    data = by_origin_table(per_image, baseline, study=REPORT["table1_study"]).data
    assert set(data.origin) == {"BSDS300/images/test", "BSDS300/images/train", "all"}
    assert data.iloc[-1].origin == "all" and data.iloc[0].method == "bicubic"
    bic = data[data.method == "bicubic"].set_index("origin")
    assert bic.at["BSDS300/images/train", "psnr"] == 29.0 and bic.at["all", "psnr"] == pytest.approx(85 / 3)
    assert bic.at["BSDS300/images/test", "n_images"] == 2
    sr = data[(data.method == "sr") & (data.preset == "as_run") & (data.lambda_s == 1.0)].set_index("origin")
    # test images 31 + 0.5 seed mean; train 32 + 0.5; the gain is over bicubic on the same images
    assert sr.at["BSDS300/images/test", "psnr"] == pytest.approx(31.25)
    assert sr.at["BSDS300/images/train", "psnr"] == pytest.approx(32.25)
    assert sr.at["BSDS300/images/train", "psnr_gain"] == pytest.approx(32.25 - 29.0)
    assert sr.at["all", "n_seeds"] == 2 and sr.at["all", "n_images"] == 3
    assert "set5" not in set(data.dataset) and (data.dataset == "bsds300").all()  # val only
    md = by_origin_table(per_image, baseline, study=REPORT["table1_study"]).to_markdown()
    assert "BSDS300/images/train" in md and "PSNR − bicubic" in md


def test_by_origin_table_notes_what_is_missing():
    from ssimsr.tables.benchmarks import by_origin_table

    per_image, baseline = _bench_frames()
    table = by_origin_table(per_image.drop(columns=["origin"]), baseline.iloc[0:0], study=REPORT["table1_study"])
    assert table.data.empty
    assert "no `origin` column" in table.notes[0] and "No validation results" in table.notes[1]
    table = by_origin_table(per_image, baseline.iloc[0:0], study=REPORT["table1_study"])
    assert "No bicubic baseline rows" in " ".join(table.notes) and table.data.psnr_gain.isna().all()


def test_build_tables_writes_benchmarks_and_by_origin(tmp_path):
    from ssimsr.tables import build_tables, table_names

    history, _ = _study_frames()
    per_image, baseline = _bench_frames()
    report = dict(table1_study="table1", appendix_study=None, stats=dict(model="sr", dataset="bsds300",
                                                                       study="table1"),
                  showcase_model="sr", showcase_dataset="bsds300", benchmarks=["set5"])
    comparisons = S.compare_studies(per_image, pairs=[[1, 0]])
    written = build_tables(history, per_image, comparisons, dict(report, comparisons=[[1, 0]]), tmp_path,
                           baseline=baseline)
    names = {p.stem for p in written}
    assert {"benchmarks", "by_origin"} <= names == set(table_names(report))
    bench = pd.read_csv(tmp_path / "benchmarks.csv")
    assert set(bench.benchmark) == {"set5"} and "bicubic" in set(bench.method)
    # the statistics read the val split only: set5 rows change nothing
    only_val = S.compare_studies(per_image[per_image.set == "val"], pairs=[[1, 0]])
    pd.testing.assert_frame_equal(comparisons, only_val)
    for name in ("benchmarks", "by_origin"):
        caption = Path(__file__).resolve().parents[1] / "workflow" / "report" / f"{name}.rst"
        assert caption.read_text().strip()


def test_bicubic_baseline_rows_in_table1_and_paper_vs_ours(tmp_path):
    from ssimsr.tables import build_tables

    history, per_image = _study_frames(lambdas=(0.0, 1.0))
    images = [f"v{i}" for i in range(5)]
    baseline = pd.DataFrame({"dataset": "bsds300", "set": "val", "image": images, "origin": "BSDS300/images/test",
                             "psnr": np.linspace(27, 29, 5),
                             "ssim": 0.8, "psnr_authors": 28.0, "psnr_y": 29.0, "ssim_y": 0.85})
    per_image = per_image.assign(psnr_y=per_image.psnr + 1, ssim_y=per_image.ssim)
    report = dict(table1_study="table1", appendix_study=None, comparisons=[[1, 0]],
                  stats=dict(model="sr", dataset="bsds300", study="table1"), showcase_model="sr",
                  showcase_dataset="bsds300")
    build_tables(history, per_image, S.compare_studies(per_image, pairs=[[1, 0]]), report, tmp_path,
                 baseline=baseline)
    t1 = pd.read_csv(tmp_path / "table1.csv")
    bic = t1[t1.model == "bicubic"].iloc[0]
    assert bic["psnr_end_mean"] == pytest.approx(28.0) and bic["bw_mse_end_mean"] == pytest.approx(10 ** -2.8)
    assert np.isnan(bic["lambda_s"]) and np.isnan(bic["psnr_start_mean"])
    versus = pd.read_csv(tmp_path / "paper_vs_ours_table1.csv")
    row = versus[(versus.model == "bicubic") & (versus.quantity == "psnr_end")].iloc[0]
    assert row["ours_as_run"] == pytest.approx(28.0) and np.isnan(row["paper"])
    assert row["agreement_as_run"] == "model-free baseline: no published value"
    assert "bicubic" in (tmp_path / "paper_vs_ours_table1.md").read_text()
