"""The Predictor stage and evaluate(): a trained artifact applied to rows, without Ray."""

import numpy as np
import pyarrow as pa
import pytest

from fakeface_ray.config import TrainConfig
from fakeface_ray.learning import train
from fakeface_ray.learning.evaluate import compute_metrics, evaluate
from fakeface_ray.learning.predict import Predictor, labelled_fake
from fakeface_ray.learning.threshold import share_fakes
from fakeface_ray.storage.schema import Status, predictions_schema, to_table


def _separable(n_per_class: int = 20, dims: int = 4) -> train.Embeddings:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (n_per_class, dims)), rng.normal(3, 1, (n_per_class, dims))])
    ids = np.array([f"img{i:03d}" for i in range(2 * n_per_class)], dtype=object)
    return train.Embeddings(ids, ids, x.astype(np.float32), np.repeat([0, 1], n_per_class), "test-4")


@pytest.fixture(scope="module")
def result():
    config = TrainConfig(backend="loky", n_jobs=1, classifier="svc", c_grid=(1.0,), kernels=("linear",))
    return train.fit(_separable(), config, seed=0)


def _rows(x: np.ndarray, statuses: list[str]):
    n = len(statuses)
    has_face = np.array([s == Status.OK for s in statuses])
    batch = {
        "image_id": np.array([f"r{i}" for i in range(n)], dtype=object),
        "uri": np.array([f"/r{i}" for i in range(n)], dtype=object),
        "label": np.full(n, None, dtype=object),
        "sha256": np.array([f"{i:064d}" for i in range(n)], dtype=object),
        "width": np.full(n, 600), "height": np.full(n, 600),
        "status": np.array(statuses, dtype=object),
        "error": np.array(["" if ok else "no face found" for ok in has_face], dtype=object),
        "n_faces": has_face.astype(int),
        "face_box": np.where(has_face[:, None], 10, -1) * np.ones((n, 4), int),
        "face_confidence": np.where(has_face, 0.99, np.nan),
        "keypoints": np.zeros((n, 10)),
    }
    vectors = np.where(has_face[:, None], x, np.nan).astype(np.float32)
    return to_table(batch, vectors, "test-4")


def test_predictor_scores_rows_with_a_face_and_keeps_the_others(result):
    artifact = result.artifact
    x = result.test.x[:4]
    rows = _rows(x, [Status.OK, Status.NO_FACE, Status.OK, Status.OK])
    out = Predictor(artifact)(rows)
    assert out.schema == predictions_schema()
    assert out.column("image_id").to_pylist() == rows.column("image_id").to_pylist()
    got = out.to_pylist()
    assert got[1]["status"] == "no_face" and got[1]["score"] is None and got[1]["pred"] is None
    ok = [0, 2, 3]
    np.testing.assert_allclose([got[i]["score"] for i in ok], artifact.scores(x[ok]), rtol=1e-6)
    np.testing.assert_allclose([got[i]["p_fake"] for i in ok], artifact.p_fake(artifact.scores(x[ok])), rtol=1e-6)
    assert [got[i]["pred"] for i in ok] == [("fake" if s >= artifact.threshold else "real")
                                            for s in artifact.scores(x[ok])]


def test_predictor_on_rows_without_any_face(result):
    out = Predictor(result.artifact)(_rows(np.zeros((2, 4)), [Status.NO_FACE, Status.DECODE_ERROR]))
    assert out.num_rows == 2 and out.column("pred").null_count == 2


def test_evaluate_matches_the_artifact_and_the_metrics(result):
    evaluation = evaluate(result.artifact, result.test)
    np.testing.assert_array_equal(evaluation.scores, result.artifact.scores(result.test.x))
    np.testing.assert_array_equal(evaluation.y_pred, (evaluation.scores >= result.artifact.threshold).astype(int))
    assert evaluation.metrics == compute_metrics(result.test.y, evaluation.y_pred, evaluation.scores)
    assert evaluation.metrics.n_test == len(result.test.y) and evaluation.metrics.macro_f1 == 1.0
    assert list(evaluation.ids) == list(result.test.ids)


def test_a_share_of_fakes_relabels_the_highest_scores_and_leaves_faceless_rows_alone(result):
    x = np.concatenate([result.test.x[:8], np.zeros((1, 4), np.float32)])
    out = Predictor(result.artifact)(_rows(x, [Status.OK] * 8 + [Status.NO_FACE]))
    scores = out.column("score").to_numpy(zero_copy_only=False)[:8]
    chosen = share_fakes(scores, 0.25, out.column("image_id").to_numpy(zero_copy_only=False)[:8])
    relabelled = labelled_fake(out, pa.array([f"r{i}" for i in np.flatnonzero(chosen)]))
    assert relabelled.schema == predictions_schema()
    preds = relabelled.column("pred").to_pylist()
    assert preds[8] is None and {i for i, p in enumerate(preds) if p == "fake"} == set(np.argsort(-scores)[:2])
    # Everything but pred is untouched.
    assert relabelled.drop_columns(["pred"]).equals(out.drop_columns(["pred"]))


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_share_fakes_calls_exactly_that_share_fake_even_among_ties(share):
    scores = np.round(np.random.default_rng(3).normal(size=1000), 1)  # about 60 distinct values: many ties
    keys = np.array([f"img{i:04d}" for i in range(1000)])
    chosen = share_fakes(scores, share, keys)
    assert chosen.sum() == round(share * 1000)
    if 0 < share < 1:  # every fake scores at least every real; at the tie, the lower keys go first
        assert scores[chosen].min() >= scores[~chosen].max()
        tied = scores == scores[chosen].min()
        if (tied & ~chosen).any():
            assert max(keys[tied & chosen]) < min(keys[tied & ~chosen])
    assert np.array_equal(share_fakes(scores, share, keys), chosen)
    same = np.zeros(10)  # constant scores: still the share, not all of them
    assert share_fakes(same, 0.25, keys[:10]).tolist() == [True] * 2 + [False] * 8
    assert not share_fakes(np.array([np.nan, 1.0]), 0.5, keys[:2])[0]
