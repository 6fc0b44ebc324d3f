"""The image-classification lessons take a learner's own images (--data imagefolder), and
the lesson texts' `--set` examples are settings their lessons accept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dlcourse_tui.lessons import find_lesson, load_lessons
from test_data_real import CLASSES, write_tree

IMAGE_LESSONS = ("linear-classifier", "convolutional-networks", "training-techniques")


@pytest.mark.parametrize("lesson_id", IMAGE_LESSONS)
def test_image_lessons_offer_imagefolder(lesson_id: str, tmp_path: Path) -> None:
    lesson = find_lesson(lesson_id)
    assert "imagefolder" in lesson.knobs["data.name"].choices
    cfg = lesson.config(overrides={"data.name": "imagefolder", "data.dir": str(tmp_path)},
                        clear=("data.n_train", "data.n_val"))
    assert cfg.data == "imagefolder" and cfg.data_args["dir"] == str(tmp_path)
    assert "imagefolder" in lesson.body  # and the text says how


def test_the_cnn_lesson_trains_an_epoch_on_an_imagefolder(dlc, dlc_home: Path, tmp_path: Path) -> None:
    root = tmp_path / "pictures"
    write_tree(root)  # 3 classes × 5 small PNGs of different sizes and modes
    r = dlc("run", "convolutional-networks", "--data", "imagefolder", "--data-dir", str(root),
            "--epochs", "1", "--set", "batch_size=4", "--json")
    assert r.code == 0, r.out + r.err
    summary = json.loads(r.out)
    assert summary["status"] == "completed" and summary["data"] == "imagefolder"
    assert summary["epoch"] == 1
    config = json.loads((Path(summary["path"]) / "config.json").read_text())
    assert config["data"]["name"] == "imagefolder"
    assert (Path(summary["path"]) / "summary.json").is_file()
    assert (root / ".dlc-cache").is_dir()  # converted once, cached beside the images


def test_the_linear_templates_are_named_after_the_folders(dlc, tmp_path: Path) -> None:
    root = tmp_path / "pictures"
    write_tree(root)
    r = dlc("run", "linear-classifier", "--data", "imagefolder", "--data-dir", str(root),
            "--epochs", "1", "--set", "batch_size=4", "--json")
    assert r.code == 0, r.out + r.err
    summary = json.loads(r.out)
    assert summary["status"] == "completed"
    from PIL import Image

    pic = Image.open(Path(summary["path"]) / "pictures" / "templates.png")
    assert pic.width == len(CLASSES) * 96 + (len(CLASSES) - 1) * 6  # one labelled 32×32 (×3) tile per folder
    assert pic.height > 96


def test_the_lessons_set_examples_are_accepted() -> None:
    """Every `--set key=value` a lesson's text shows builds a config of that lesson
    (placeholders such as `…` or a capital letter are skipped)."""
    bad = []
    for lesson in load_lessons():
        for m in re.finditer(r"--set\s+([\w.]+)=([^\s`\"']*)", lesson.body):  # in prose or in a block's "command"
            key, value = m.group(1), m.group(2)
            if "…" in value or "..." in value:
                continue
            value = value.rstrip(",.;:)]")  # the end of a sentence, or of [optional arguments]
            if re.fullmatch(r"[A-Z]+", value):
                continue
            try:
                lesson.config(sets=[f"{key}={value}"])
            except Exception as e:  # noqa: BLE001 - collect them all
                bad.append(f"{lesson.id}: --set {key}={value}: {e}")
    assert not bad, "\n".join(bad)


def test_the_lenet_variant_has_the_volumes_the_text_shows() -> None:
    from dlcourse_tui.models.registry import count_params, create_model

    lesson = find_lesson("convolutional-networks")
    cfg = lesson.config(variant="lenet")
    assert cfg.model_args["padding"] == 0 and cfg.model_args["kernel_size"] == 5
    model = create_model("cnn", input_shape=(3, 32, 32), num_classes=10, args=cfg.model_args)
    assert model.cfg.block_shapes() == [(6, 14, 14), (16, 5, 5)]  # 32 → 28 → 14 → 10 → 5
    assert count_params(model) == 6882
    assert "6,882" in lesson.body
    assert find_lesson("convolutional-networks").config(sets=["padding=0"]).model_args["padding"] == 0
    with pytest.raises(Exception, match="padding"):
        lesson.config(sets=["padding=4"])  # the knob's range is 0 … 3
