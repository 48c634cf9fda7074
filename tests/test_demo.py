import json
import re

import numpy as np
import pytest

from fakeface_ray import demo


class TemplateLandmarks:
    """Stands in for MTCNN: the same five landmarks on every 600x600 face render."""

    def detect_faces(self, images):
        kp = {"left_eye": [210, 250], "right_eye": [390, 250], "nose": [300, 340],
              "mouth_left": [230, 450], "mouth_right": [370, 450]}
        return [[{"box": [100, 60, 400, 520], "confidence": 0.99, "keypoints": kp}] for _ in images]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    manifest = demo.build_demo_corpus(out, seed=3, variants=1, identities=12, detector=TemplateLandmarks())
    return out, manifest


def test_layout_names_and_equal_level_shares(corpus):
    out, manifest = corpus
    root = out / demo.CORPUS
    reals = sorted(p.name for p in (root / "training_real").iterdir())
    fakes = sorted(p.name for p in (root / "training_fake").iterdir())
    assert len(reals) == 6 and len(fakes) == 6
    assert all(re.fullmatch(r"real_\d{5}\.jpg", n) for n in reals)
    assert all(re.fullmatch(r"(easy|mid|hard)_\d+_[01]{4}\.jpg", n) and not n.endswith("_0000.jpg") for n in fakes)
    levels = [n.split("_")[0] for n in fakes]
    assert {lvl: levels.count(lvl) for lvl in demo.LEVELS} == {"easy": 2, "mid": 2, "hard": 2}
    assert json.loads((out / demo.MANIFEST).read_text()) == manifest
    assert demo.corpus_ready(out)


def test_no_identity_is_both_real_and_a_fake_base(corpus):
    _, manifest = corpus
    real_ids = {m["identity"] for m in manifest["images"] if m["label"] == "real"}
    fake_ids = {m["identity"] for m in manifest["images"] if m["label"] == "fake"}
    assert not real_ids & fake_ids
    assert all(m["donor"] != m["identity"] for m in manifest["images"] if m["label"] == "fake")


def test_same_seed_same_bytes(corpus, tmp_path):
    out, _ = corpus
    demo.build_demo_corpus(tmp_path, seed=3, variants=1, identities=12, detector=TemplateLandmarks())
    first = sorted(p.relative_to(out) for p in (out / demo.CORPUS).rglob("*.jpg"))
    again = sorted(p.relative_to(tmp_path) for p in (tmp_path / demo.CORPUS).rglob("*.jpg"))
    assert first == again and len(first) == 12
    assert all((out / path).read_bytes() == (tmp_path / path).read_bytes() for path in first)


def test_splice_changes_only_the_chosen_parts():
    rng = np.random.default_rng(0)
    faces = demo.lfw_faces()[:2]
    kp = np.array([[8.5, 10.0], [15.5, 10.0], [12.0, 13.5], [9.0, 17.5], [15.0, 17.5]])
    base = demo.render_photo(faces[0], kp, rng)
    donor = demo.render_photo(faces[1], kp, rng)
    out = demo.splice(base, donor, (False, False, False, True), "easy", rng)
    changed = np.abs(out.astype(int) - base.pixels).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    mouth = base.keypoints[3:].mean(axis=0)
    assert abs(xs.mean() - mouth[0]) < 40 and abs(ys.mean() - mouth[1]) < 40
    assert changed.mean() < 0.1
