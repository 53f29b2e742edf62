"""PNG and SVG writers, the mask visualiser and the experiment runner on tiny inputs."""
import csv
import dataclasses
import struct
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest

import minran
from minran import experiments, plots, visualize
from minran.data import Dataset
from minran.trainer import Run, TrainConfig


def read_png(path):
    """Decode our PNGs with the standard library, checking every chunk's CRC."""
    blob = open(path, "rb").read()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", blob[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, f"bad CRC in {kind}"
        chunks[kind] = data
        pos += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + 3 * width)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(height, width, 3)


def test_png_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    plots.write_png(tmp_path / "a.png", image)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), image)
    with pytest.raises(ValueError, match="expected an"):
        plots.write_png(tmp_path / "b.png", np.zeros((4, 4)))


def test_heat_map_ends():
    np.testing.assert_array_equal(plots.heat(np.array([0.0, 1.0])), [[0, 0, 128], [220, 0, 0]])


def test_learning_curves_svg_parses(tmp_path):
    history = [{"epoch": e, "train_loss": 2 / e, "test_loss": 2.2 / e, "train_acc": 0.2 * e,
                "test_acc": 0.18 * e} for e in (1, 2, 3)]
    plots.learning_curves_svg(history, tmp_path / "c.svg", title="a & b")
    root = ET.parse(tmp_path / "c.svg").getroot()
    assert root.tag.endswith("svg") and len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 4


def _tiny_dataset(n_train=48, n_test=8):
    rng = np.random.default_rng(0)
    return Dataset(rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n_train),
                   rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n_test),
                   [f"class{i}" for i in range(10)])


def test_visualiser_on_an_untrained_network(tmp_path):
    data = _tiny_dataset()
    model = minran.models.attention56(widths=(4, 8, 8, 8))
    x = ((data.test_images - 128) / 64).astype(np.float32)
    names = visualize.render(model, data.test_images[:3], x[:3], data.test_labels[:3], data.classes, tmp_path)
    assert len(names) == 3
    picture = read_png(tmp_path / names[0])
    assert picture.shape == (128, 4 * 128 + 3 * 4, 3)  # image + 3 stage masks, 4x scale
    np.testing.assert_array_equal(picture[:4, :4], np.repeat(np.repeat(
        data.test_images[0].transpose(1, 2, 0)[:1, :1], 4, 0), 4, 1))
    assert "| true | predicted |" in (tmp_path / "index.md").read_text()


@pytest.mark.parametrize("preset", list(experiments.PRESETS))
def test_experiment_presets_run(preset, tmp_path, monkeypatch):
    # Two epochs of each of the first two runs on synthetic data (label-noise: one run of
    # each network). Checked: every run trained with its preset's changes and nothing else,
    # in its own folder, and the table reports its last epoch next to the paper's number.
    runs = experiments.PRESETS[preset][:2]
    monkeypatch.setitem(experiments.PRESETS, preset, runs)
    trained = []
    real_train = experiments.train
    monkeypatch.setattr(experiments, "train", lambda config, **kw: trained.append(config) or real_train(config, **kw))
    base = TrainConfig(arch="attention56", epochs=2, batch_size=24, out=str(tmp_path),
                       progress=False, widths=(4, 8, 8, 8))
    rows = experiments.run_preset(preset, base, dataset=_tiny_dataset(), log=lambda *a: None)
    table = (tmp_path / "results.md").read_text()
    assert [r["run"] for r in rows] == [name for name, _, _ in runs]
    for row, config, (name, changes, paper) in zip(rows, trained, runs):
        arch = "preact_resnet56" if changes.get("arch") == experiments.BASELINE else base.arch
        assert config == dataclasses.replace(base, out=str(tmp_path / name), **{**changes, "arch": arch})
        with open(tmp_path / name / "log.csv") as f:
            log = list(csv.DictReader(f))
        assert len(log) == 2 and row["epochs"] == 2 and row["arch"] == arch
        assert row["error"] == pytest.approx(100 * (1 - float(log[-1]["test_acc"])))
        assert row["paper"] == paper.get(arch)
        shown = f"{paper[arch]:.2f}" if arch in paper else "– (paper ran another depth)"
        assert f"| {name} | {arch} | {row['error']:.2f} | {shown} |" in table
    assert "test error % (last epoch)" in table and "widths (4, 8, 8, 8)" in table
    if preset == "label-noise":
        # The noise reaches the training labels, at its rate, and never the test labels.
        assert [c.label_noise for c in trained] == [0.1, 0.1]
        big = _tiny_dataset(n_train=2000)
        run = Run(trained[0], dataset=big)
        assert abs((run.train_y != big.train_labels).mean() - 0.1) < 0.03
        np.testing.assert_array_equal(run.test_y, big.test_labels)


def test_experiment_runs_can_be_picked_by_name():
    assert [r[0] for r in experiments.select("label-noise", ["resnet-noise50", "attention-noise50"])] \
        == ["attention-noise50", "resnet-noise50"]
    assert experiments.baseline_for("attention92") == "preact_resnet164"
    with pytest.raises(ValueError, match="has no run noise50.*attention-noise10"):
        experiments.select("label-noise", ["noise50"])
