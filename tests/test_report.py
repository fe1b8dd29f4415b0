"""The report: claims and their verdicts from the numbers, the figures, and README.md."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from neuroseg import paths
from neuroseg.measure import timing
from neuroseg.report import results
from neuroseg.report.results import (
    axon_myelin_figure,
    load_metrics,
    machine_description,
    nucleus_figure,
    segmentation_figure,
    timing_devices,
    timing_figure,
    transfer_figure,
    write_readme,
)

matplotlib.use("Agg")


def _timing(ratio: float, c2: float, c3: float) -> dict:
    t = {"device": "cuda", "device_name": "NVIDIA H100", "precision": "bf16"}
    for z in ("10nm", "40nm"):
        t.update({
            f"{z}_ratio_3d_over_2d": ratio, f"{z}_cremi_2d": c2, f"{z}_cremi_3d": c3,
            f"{z}_2d_s_per_mvox": 1.0, f"{z}_3d_s_per_mvox": ratio, f"{z}_share_linking": 0.2,
            f"{z}_2d_inference_s_per_mvox": 0.5, f"{z}_2d_instances_s_per_mvox": 0.3,
            f"{z}_linking_s_per_mvox": 0.2, f"{z}_3d_inference_s_per_mvox": ratio / 2,
            f"{z}_agglomeration_s_per_mvox": ratio / 2,
        })
    return t


def _metrics(**over) -> dict:
    m = {
        "10_nucleus_pretraining": {"val_pixel_iou": 0.86, "test_precision": 0.95, "test_accuracy": 0.80},
        "40_timing_h100": _timing(2.5, 0.60, 0.61),
        "40_timing_cpu": _timing(3.0, 1.05, 0.69),
        "50_axon_myelin": {"sem_dice_axon": 0.9, "sem_dice_myelin": 0.85, "sem_gratio_mad": 0.03},
    }
    m.update(over)
    return m


def _verdict(items, source):
    return [c.verdict for c in items if c.source == source]


def test_verdicts_follow_the_numbers():
    items = results.claims(_metrics())
    assert _verdict(items, "SomaNet") == ["reproduced"]
    # CPU first: 3x faster but worse accuracy; H100: 2.5x faster at CREMI within 5 %
    assert _verdict(items, "Know Your Neighbour") == ["partly reproduced", "reproduced"]
    assert _verdict(items, "AxonDeepSeg") == ["reproduced"]
    assert not any("missed" in c.measured for c in items if c.source == "AxonDeepSeg")
    assert _verdict(items, "WEBKNOSSOS") == ["not measured"]

    worse = results.claims(_metrics(**{
        "10_nucleus_pretraining": {"val_pixel_iou": 0.4, "test_precision": 0.5, "test_accuracy": 0.5},
        "50_axon_myelin": {"sem_dice_axon": 0.7, "sem_dice_myelin": 0.82, "sem_gratio_mad": 0.09},
    }))
    assert _verdict(worse, "SomaNet") == ["not reproduced"]
    assert _verdict(worse, "AxonDeepSeg") == ["partly reproduced"]
    (c,) = [c for c in worse if c.source == "AxonDeepSeg"]
    assert "targets missed: Dice axon 0.7000 (target >= 0.85), g-ratio difference 0.0900" in c.measured
    assert "Dice myelin 0.8200" not in c.measured
    # just under a target: shown to four digits, so that 0.850 is not read as met
    under = results.claims(_metrics(**{
        "50_axon_myelin": {"sem_dice_axon": 0.84962, "sem_dice_myelin": 0.82, "sem_gratio_mad": 0.03}}))
    (c,) = [c for c in under if c.source == "AxonDeepSeg"]
    assert c.verdict == "partly reproduced"
    assert c.measured.endswith("SEM targets missed: Dice axon 0.8496 (target >= 0.85) (1 seed)")
    assert "shift" not in c.measured  # no bias recorded
    shifted = results.claims(_metrics(**{"50_axon_myelin": {
        "sem_dice_axon": 0.9, "sem_dice_myelin": 0.9, "sem_gratio_mad": 0.07, "sem_gratio_bias": -0.061}}))
    (c,) = [c for c in shifted if c.source == "AxonDeepSeg"]
    assert "g-ratio difference 0.070, mean g-ratio shift -0.061 (predicted minus manual)" in c.measured
    # JSON null (no axon compared): shown as a dash, and it fails its target
    nothing = results.claims({"50_axon_myelin": {"sem_dice_axon": 0.9, "sem_dice_myelin": 0.9,
                                                "sem_gratio_mad": None}})
    (c,) = [c for c in nothing if c.source == "AxonDeepSeg"]
    assert c.verdict == "partly reproduced" and "g-ratio difference —" in c.measured


def test_missing_results_are_not_measured():
    items = results.claims({})
    assert {c.verdict for c in items} == {"not measured"}
    assert {c.source for c in items} == {"SomaNet", "Know Your Neighbour", "WEBKNOSSOS", "AxonDeepSeg",
                                         "SomaNet (next steps)"}


def test_tracking_verdict_names_the_missed_peer_comparison():
    head = {"best_linker_on_training": "overlap", "test_SEG": 0.8, "test_AP50": 0.9, "cells": 20,
            "median_speed_um_min": 0.1, "median_speed_truth_um_min": 0.11, "saltations_total": 3,
            "saltations_truth_total": 2, "overlap_later_TRA": 0.95, "overlap_later_LNK": 0.9,
            "laptrack_later_TRA": 0.97, "laptrack_later_LNK": 0.92}
    (c,) = results.claims({"60_soma_tracking_headline": head})[-1:]
    assert c.source == "SomaNet (next steps)" and c.verdict == "partly reproduced"
    assert "peer comparison is missed" in c.evidence and "TRA 0.950" in c.measured
    (c,) = results.claims({"60_soma_tracking_headline": {**head, "overlap_later_TRA": 0.98}})[-1:]
    assert c.verdict == "reproduced" and "matches or beats laptrack" in c.evidence
    # laptrack best on the training frames: ours is still the better own linker there
    choice = pd.DataFrame({"linker": ["overlap", "learned", "laptrack"], "TRA": [0.95, 0.96, 0.97]})
    head = {**head, "best_linker_on_training": "laptrack", "learned_later_TRA": 0.99,
            "learned_later_LNK": 0.95}
    (c,) = results.claims({"60_soma_tracking_headline": head,
                           "60_soma_tracking_choice": choice})[-1:]
    assert "learned linker: TRA 0.990" in c.measured and c.verdict == "reproduced"


def test_webknossos_verdict_compares_3d_with_2d_on_each_volume():
    baseline = {"fib25_test_40nm_cremi": 0.7, "fib25_test_40nm_setting": "mws@0.5",
                "gala_40nm_cremi": 0.6, "gala_40nm_setting": "cc@0.8"}
    linking = {"fib25_test_40nm_predicted_cremi_learned": 1.0,
               "gala_40nm_predicted_cremi_learned": 0.5}
    items = results.claims({"35_affinities_3d_summary": baseline, "30_slice_linking_summary": linking})
    (c,) = [c for c in items if c.source == "WEBKNOSSOS"]
    assert c.verdict == "partly reproduced"
    assert "gala 40nm: 3D 0.600 (cc@0.8) vs 2D 0.500" in c.measured


def test_timing_devices_cpu_first():
    assert timing_devices(_metrics()) == ["cpu", "h100"]
    assert timing_devices({"40_timing_cpu_stages": pd.DataFrame()}) == []


def test_load_metrics_and_readme(outputs):
    metrics_dir = paths.metrics_dir("quick")
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "50_axon_myelin.json").write_text(
        json.dumps({"sem_dice_axon": 0.7, "sem_dice_myelin": 0.6, "sem_gratio_mad": 0.08}))
    pd.DataFrame({"modality": ["sem"], "init": ["scratch"], "test_dice_axon": [0.7]}).to_csv(
        metrics_dir / "50_axon_myelin_comparison.csv", index=False)
    figures = paths.figures_dir("quick")
    figures.mkdir(parents=True)
    (figures / "50_sem_gratio.png").write_bytes(b"png")
    m = load_metrics("quick")
    assert set(m) == {"50_axon_myelin", "50_axon_myelin_comparison"}
    assert isinstance(m["50_axon_myelin_comparison"], pd.DataFrame)
    out = write_readme(m, profile="quick", machine="test machine")
    text = out.read_text()
    assert out == paths.reports_dir("quick") / "README.md"
    assert "test machine" in text and "profile **quick**" in text
    assert "| AxonDeepSeg |" in text and "not reproduced" in text
    assert "![50_sem_gratio](figures/50_sem_gratio.png)" in text
    assert "_No timing results yet" in text
    assert not list(out.parent.glob("*.tmp"))


def test_figures_draw():
    import matplotlib.pyplot as plt

    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6],
                            "train_iou": [0.5, 0.7], "val_iou": [0.4, 0.6]})
    somanet = pd.DataFrame({"metric": ["validation pixel IoU"], "ours": [0.8], "paper": [0.5]})
    curve = pd.DataFrame({"name": ["a", "a", "b", "b"], "n_train": [1, 4, 1, 4],
                          "test_iou": [0.1, 0.3, 0.2, 0.25]})
    linking = pd.DataFrame({"volume": ["v"], "z_nm": [40.0], "segments": ["oracle"],
                            "method": ["learned"], "cremi": [0.2]})
    fig4, table = segmentation_figure(linking, {"v_40nm_cremi": 0.5, "v_40nm_setting": "cc@0.5"})
    assert sorted(table["route"]) == ["2D oracle segments + learned linking", "3D affinities (cc@0.5)"]
    comparison = pd.DataFrame({"modality": ["sem", "sem"], "init": ["scratch", "pretrained"],
                               "chosen": [False, True], "test_dice_myelin": [0.8, 0.82],
                               "test_dice_axon": [0.85, 0.9], "test_dice_mean": [0.8, 0.9]})
    figs = [nucleus_figure(history, somanet), transfer_figure({"soma": curve}),
            fig4, timing_figure(_metrics(), ["cpu"]), axon_myelin_figure(comparison)]
    for f in figs:
        assert f.axes
        plt.close(f)


def test_axon_myelin_figure_shows_the_refit_beside_the_inits():
    import matplotlib.pyplot as plt

    comparison = pd.DataFrame({
        "modality": ["sem"] * 3, "init": ["scratch", "pretrained", "scratch"],
        "name": ["scratch", "pretrained", "scratch+val"], "train_on": ["train", "train", "train+val"],
        "chosen": [True, False, False], "final": [False, False, True],
        "test_dice_myelin": [0.8, 0.78, 0.81], "test_dice_axon": [0.82, 0.8, 0.84],
    })
    fig = axon_myelin_figure(comparison)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts() if t.get_text() != "target"]
    assert labels == ["scratch (chosen on val)", "pretrained",
                          "scratch refit on train+val (reported)"]
    heights = sorted(round(p.get_height(), 2) for p in ax.patches)
    assert heights == [0.78, 0.8, 0.8, 0.81, 0.82, 0.84]
    plt.close(fig)


@pytest.mark.parametrize("bad", [None, float("nan")])
def test_format_of_missing_numbers(bad):
    assert results._fmt(bad) == "—"


def test_machine_description_names_processor_memory_and_versions():
    import platform

    import torch


    text = machine_description()
    assert timing.device_name("cpu") in text
    assert "GiB RAM" in text
    assert f"torch {torch.__version__}" in text and platform.python_version() in text
    assert ("no GPU" in text) != torch.cuda.is_available()


def test_readme_timing_section_names_how_the_networks_ran(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSEG_REPORTS", str(tmp_path / "reports"))
    t = {**_timing(3.0, 1.05, 0.69), "speed_2d": "bf16, channels-last, batch 8",
         "speed_3d": "fp32, batch 2", "speed_work_2d_speedup": 1.8, "speed_work_3d_speedup": 1.25}
    text = write_readme({"40_timing_cuda": t}, profile="quick", machine="m").read_text()
    assert ("2D networks: bf16, channels-last, batch 8; 3D network: fp32, batch 2; "
            "speed work against fp32 eager: 2D x1.80, 3D x1.25") in text


def test_the_blockwise_studys_section_is_on_the_page_when_it_has_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSEG_REPORTS", str(tmp_path / "reports"))
    (tmp_path / "reports" / "quick").mkdir(parents=True)
    assert "blockwise" not in write_readme({}, profile="quick", machine="m").read_text()
    (tmp_path / "reports" / "quick" / "blockwise.md").write_text("## Volumes larger\n\n| 2d | 0.25 |\n")
    text = write_readme({}, profile="quick", machine="m").read_text()
    assert text.rstrip().endswith("## Volumes larger\n\n| 2d | 0.25 |")


def test_number_formatting_golden():
    assert [results._fmt(v) for v in (525.0, 1.6e-05, 0.0, 0.76565, 3, 1.0, None, float("nan"))] == [
        "525", "1.6e-05", "0.000", "0.766", "3", "1", "—", "—"]
    assert [results._fmt(v) for v in (True, np.False_)] == ["yes", "no"]


def _front(c2_40: float, s2_40: float) -> pd.DataFrame:
    """A hand-made front: one 3D setting (CREMI 0.5, 2.1 s/Mvox) and two 2D settings per volume
    and z; at 40 nm the first 2D setting has CREMI ``c2_40`` and ``s2_40`` s/Mvox."""
    rows = []
    for volume in ("v1", "v2"):
        for z in (10.0, 40.0):
            first = (c2_40, s2_40) if z == 40.0 else (0.9, 0.5)
            for route, setting, (cremi, s) in (("3d", "3d_f8", (0.5, 2.1)),
                                               ("2d", "2d_a", first), ("2d", "2d_b", (0.8, 3.0))):
                rows.append({"route": route, "setting": setting, "z_nm": z, "volume": volume,
                             "cremi": cremi, "voi_split": 0.1, "voi_merge": 0.1, "arand": 0.1,
                             "s_per_mvox": s, "train_seconds": 300.0, "train_flops": 1e12})
    return pd.DataFrame(rows)


def test_know_your_neighbour_is_judged_on_the_front_when_there_is_one(tmp_path, monkeypatch):
    # 2D within 5 % and 3.5x faster at 40 nm, but nowhere near at 10 nm: partly
    items = results.claims(_metrics(**{"45_front_2d_vs_3d_cpu": _front(0.51, 0.6)}))
    (c,) = [c for c in items if c.source == "Know Your Neighbour"]
    assert c.verdict == "partly reproduced" and "front on cpu" in c.measured
    assert "v1 40 nm: best 3D CREMI 0.500 at 2.10 s/Mvox; 2D within 5 % (2d_a, CREMI 0.510) 3.50x faster" in c.measured
    assert "v1 10 nm: best 3D CREMI 0.500 at 2.10 s/Mvox; no 2D setting within 5 % (best 2D CREMI 0.800, at equal time 0.900)" in c.measured
    # nowhere within 5 %: not reproduced
    items = results.claims(_metrics(**{"45_front_2d_vs_3d_cpu": _front(0.7, 0.5)}))
    assert _verdict(items, "Know Your Neighbour") == ["not reproduced"]
    # the choices table is not a front
    assert results.front_devices({"45_front_2d_vs_3d_cpu_choices": pd.DataFrame(),
                                  "45_front_2d_vs_3d_cpu_precision": pd.DataFrame({"cremi": [0.5]}),
                                  "45_front_2d_vs_3d_cpu": _front(0.7, 0.5)}) == ["cpu"]
    monkeypatch.setenv("NEUROSEG_REPORTS", str(tmp_path))
    text = write_readme({"45_front_2d_vs_3d_cpu": _front(0.51, 0.6)}, profile="quick", machine="m").read_text()
    assert "| v1 | 40 nm | 3d_f8: 0.500, 2.10 | 2d_a: 0.510, 0.60, 3.50x | 2d_a: 0.510, 0.60 | 2d_a: 0.510 |" in text


def test_every_measured_claim_says_how_many_seeds_stand_behind_it():
    items = results.claims(_metrics())
    assert all(c.measured.endswith("(1 seed)") for c in items if c.verdict != "not measured")
    seeds = pd.DataFrame({"step": ["10_nucleus_pretraining"], "metric": ["test_ap50"],
                          "seeds": ["0 1 2"], "mean": [0.8], "sd": [0.01]})
    (c,) = [c for c in results.claims(_metrics(seeds=seeds)) if c.source == "SomaNet"]
    assert c.measured.endswith("(spread over seeds for 10_nucleus_pretraining (seeds tables); the rest 1 seed)")
    # a spread of 20's numbers stands behind 20's claim, not behind the nucleus claim of 10
    seeds20 = seeds.assign(step="20_neuron_finetuning")
    (c,) = [c for c in results.claims(_metrics(seeds=seeds20)) if c.source == "SomaNet"]
    assert c.claim.startswith("nucleus U-Net") and c.measured.endswith("(1 seed)")


def test_every_committed_figure_has_a_caption_and_the_page_shows_it(tmp_path, monkeypatch):
    from neuroseg.report.captions import caption

    figures = sorted(p.stem for p in (paths.reports_dir("full") / "figures").glob("*.png"))
    assert figures and [f for f in figures if caption(f) is None] == []
    monkeypatch.setenv("NEUROSEG_REPORTS", str(tmp_path))
    (tmp_path / "quick" / "figures").mkdir(parents=True)
    (tmp_path / "quick" / "figures" / "30_link_scores.png").write_bytes(b"png")
    (tmp_path / "quick" / "figures" / "30_cremi_by_method.png").write_bytes(b"png")
    page = write_readme({}, profile="quick", machine="m")
    text, appendix = page.read_text(), (page.parent / "figures.md").read_text()
    # the key figure on the page, the diagnostic one in the appendix, each with its caption
    assert f"![30_cremi_by_method](figures/30_cremi_by_method.png)\n\n*{caption('30_cremi_by_method')}*" in text
    assert "30_link_scores.png" not in text
    assert "[figures.md](figures.md#slice-linking-know-your-neighbour)" in text
    assert "## Slice linking (Know Your Neighbour)" in appendix
    assert f"![30_link_scores](figures/30_link_scores.png)\n\n*{caption('30_link_scores')}*" in appendix


def test_every_image_on_both_pages_has_a_caption_sentence():
    """The committed results page and its appendix: each image is followed by a caption."""
    import re

    for page in ("README.md", "figures.md"):
        lines = (paths.reports_dir("full") / page).read_text().splitlines()
        images = [i for i, line in enumerate(lines) if line.startswith("![")]
        assert images, page
        for i in images:
            cap = lines[i + 2] if i + 2 < len(lines) else ""
            assert re.fullmatch(r"\*\w.{20,}\*", cap), (page, lines[i], cap)


def test_the_page_opens_with_a_summary_and_a_glossary_and_has_no_snake_case_keys(tmp_path, monkeypatch):
    import re

    monkeypatch.setenv("NEUROSEG_REPORTS", str(tmp_path))
    metrics = _metrics(**{"10_nucleus_pretraining": {"val_pixel_iou": 0.86, "test_precision": 0.90,
                                                      "test_accuracy": 0.77, "test_ap50": 0.81}})
    text = write_readme(metrics, profile="quick", machine="m").read_text()
    assert text.index("## In short") < text.index("## How to read the numbers") < text.index("## The seed")
    assert "- **SomaNet**: nucleus U-Net: val IoU 0.50, precision 94%, accuracy 74% — **partly reproduced**." in text
    assert "val IoU 0.86 vs 0.50 met; test precision 90% vs 94% missed; test accuracy 77% vs 74% met" in text
    assert "| test AP@0.5 | 0.810 | 1 seed |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert not [r for r in rows if re.search(r"\b[a-z0-9]+_[a-z0-9_]+\b", r.split("|")[1])]
    real = write_readme(load_metrics("full"), profile="quick", machine="m").read_text()
    headers = [line for k, line in enumerate(real.splitlines()[1:], 1)
               if real.splitlines()[k - 1].startswith("| ") is False and line.startswith("| ")]
    assert headers and not [h for h in headers if re.search(r"\b[a-z0-9]+_[a-z0-9_]+\b", h)], headers


def test_a_spread_written_by_make_seeds_reaches_the_results_page():
    """``make seeds`` names a metric ``<headline file>:<key>`` (as verify does); the page finds it."""
    seeds = pd.DataFrame({"step": ["10_nucleus_pretraining"],
                          "metric": ["10_nucleus_pretraining:test_ap50"],
                          "seeds": ["0 1 2"], "mean": [0.8], "sd": [0.01]})
    text = results.seed_spread_text({"seeds": seeds}, "10_nucleus_pretraining", "test_ap50", 0.81)
    assert text == "0.800 ± 0.010 (3 seeds)"
    assert results.seed_spread_text({"seeds": seeds}, "10_nucleus_pretraining", "test_dsb_score") == "1 seed"
