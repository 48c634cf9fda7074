import numpy as np
import pytest

from fakeface_ray.learning import classifiers, train
from fakeface_ray.config import TrainConfig
from fakeface_ray.learning.artifact import ARTIFACT_VERSION, ModelError, fit_sigmoid, load_artifact, save_artifact
from fakeface_ray.learning.train import Embeddings, TrainError


def _data(n_per_class: int, dims: int = 6, gap: float = 3.0, seed: int = 0) -> Embeddings:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, (n_per_class, dims)), rng.normal(gap, 1, (n_per_class, dims))])
    y = np.repeat([0, 1], n_per_class)
    ids = np.array([f"img{i:03d}" for i in range(len(y))], dtype=object)
    return Embeddings(ids, ids, x.astype(np.float32), y, "test-6")


def _grid(config: TrainConfig, n_rows: int, dims: int) -> list[dict]:
    return classifiers.build(classifiers.resolve(config.classifier, n_rows), config, n_rows, dims, seed=0)[1]


def test_param_grid_has_gamma_only_for_rbf():
    grid = _grid(TrainConfig(classifier="svc", c_grid=(0.5, 1, 2)), n_rows=1000, dims=128)
    assert grid == [{"clf__kernel": ["linear"], "clf__C": [0.5, 1, 2]},
                    {"clf__kernel": ["rbf"], "clf__C": [0.5, 1, 2], "clf__gamma": ["scale", 0.01, 0.1]}]


def test_auto_takes_trees_then_the_exact_svc_then_nystroem_at_the_measured_crossovers():
    trees, limit = classifiers.TREES_MAX_ROWS, classifiers.EXACT_SVC_MAX_ROWS
    assert classifiers.resolve("auto", trees) == "trees" and classifiers.resolve("auto", trees + 1) == "svc"
    assert classifiers.resolve("auto", limit) == "svc" and classifiers.resolve("auto", limit + 1) == "nystroem"
    trees = _grid(TrainConfig(tree_leaf_grid=(2, 4)), n_rows=1000, dims=128)
    assert trees == [{"clf__min_samples_leaf": [2, 4]}]
    assert classifiers.resolve("linear", 10) == "linear"
    big = _grid(TrainConfig(c_grid=(1.0,), gamma_grid=("scale", 0.1)), n_rows=10**6, dims=128)
    assert big == [{"map__gamma": [1 / 128, 0.1], "clf__C": [1.0]}]
    sgd = _grid(TrainConfig(classifier="sgd", c_grid=(0.5, 2.0)), n_rows=1000, dims=128)
    assert sgd == [{"clf__alpha": [1 / 500, 1 / 2000]}]


@pytest.mark.parametrize("kind", ["trees", "linear", "sgd", "nystroem"])
def test_every_scalable_classifier_trains_calibrates_and_thresholds(kind):
    config = TrainConfig(backend="loky", n_jobs=2, c_grid=(0.1, 1.0), classifier=kind, nystroem_components=50,
                         tree_count=50)
    result = train.fit(_data(40), config, seed=0)
    assert result.classifier == kind
    assert result.artifact.model.score(result.test.x, result.test.y) == 1.0
    p_fake = result.artifact.p_fake(result.artifact.scores(result.test.x))
    assert ((p_fake > 0.5) == (result.test.y == 1)).all()
    assert set(result.best_params) <= {"C", "alpha", "gamma", "min_samples_leaf"} and result.best_params
    # The decision value is on the `fake` side of zero exactly where the model says fake.
    scores = result.artifact.scores(result.test.x)
    assert ((scores > 0) == (result.artifact.model.predict(result.test.x) == 1)).all()


@pytest.mark.parametrize("drawn, dims, expected", [(2, 67, 2), (2, 1, 1), ("sqrt", 67, "sqrt")])
def test_the_trees_draw_the_configured_features_per_split_at_most_all(drawn, dims, expected):
    model, _ = classifiers.build("trees", TrainConfig(tree_max_features=drawn), n_rows=60, dims=dims, seed=0)
    assert model.named_steps["clf"].max_features == expected
    model.fit(np.random.default_rng(0).normal(size=(20, dims)), np.repeat([0, 1], 10))


def test_trees_are_seeded():
    config = TrainConfig(backend="loky", n_jobs=1, classifier="trees", tree_count=20, tree_leaf_grid=(1,))
    data = _data(20, gap=0.5)
    first, again = train.fit(data, config, seed=3), train.fit(data, config, seed=3)
    other = train.fit(data, config, seed=4)
    x = first.test.x
    assert (first.artifact.scores(x) == again.artifact.scores(x)).all()
    assert (first.artifact.scores(x) != other.artifact.scores(x)).any()


def test_p_fake_is_platts_sigmoid_of_the_out_of_fold_scores():
    rng = np.random.default_rng(0)
    many = np.repeat([0, 1], [1200, 800])
    noise = fit_sigmoid(many, rng.normal(size=len(many)))
    assert abs(noise.slope) < 0.1 and abs(noise(0.0) - 0.4) < 0.02  # uninformative scores: the base rate
    y = np.repeat([0, 1], [30, 20])
    informative = fit_sigmoid(y, rng.normal(size=50) + 2 * y)
    grid = np.linspace(-3, 5, 9)
    assert informative.slope > 0 and (np.diff(informative(grid)) > 0).all()
    # Scores that separate the classes perfectly still give probabilities short of 0 and 1.
    separable = fit_sigmoid(y, np.where(y == 1, 10.0, -10.0))
    assert 0.5 < separable(10.0) <= 21 / 22 + 1e-3 and 1 / 32 - 1e-3 <= separable(-10.0) < 0.5


def test_split_is_stratified_and_seeded():
    data = _data(50)
    a_train, a_test = train.split(data, 0.2, seed=1)
    b_train, b_test = train.split(data, 0.2, seed=1)
    assert list(a_test.ids) == list(b_test.ids)
    assert np.bincount(a_test.y).tolist() == [10, 10]
    assert not set(a_train.ids) & set(a_test.ids)


def test_one_class_or_tiny_splits_are_user_errors():
    data = _data(5)
    only_real = Embeddings(data.ids[:5], data.uris[:5], data.x[:5], data.y[:5], data.embedder)
    with pytest.raises(TrainError, match="both classes"):
        train.split(only_real, 0.2, 0)
    with pytest.raises(TrainError, match="too large or too small for the smallest class"):
        train.split(_data(5), 0.05, 0)
    with pytest.raises(TrainError, match="too large or too small"):
        train.check_labels(["real"] * 20 + ["fake"] * 3, 0.9)
    train.check_labels(["real"] * 5 + ["fake"] * 5 + [None], 0.2)


def test_fit_learns_separable_data_with_loky(capsys):
    result = train.fit(_data(40), TrainConfig(backend="loky", n_jobs=2, classifier="svc", c_grid=(0.1, 1.0)), seed=0)
    # 8 candidates (linear x 2 C, rbf x 2 C x 3 gamma) x 5 folds, then the out-of-fold scores
    assert "[fakeface] train 45/45 fits (100%)" in capsys.readouterr().err.splitlines()[-1]
    assert result.artifact.model.score(result.test.x, result.test.y) == 1.0
    # The default allowance lowers one_se's 0 to the lowest threshold as good as the best: still no
    # real called fake on the folds.
    point = result.operating_point
    assert point.rule == "one_se, false_alarm_allowance=0.2" and point.threshold < 0.0
    assert point.macro_f1 == 1.0 and point.false_alarm_rate == 0.0
    p_fake = result.artifact.p_fake(result.artifact.scores(result.test.x))
    assert (p_fake[result.test.y == 1] > 0.5).all() and (p_fake[result.test.y == 0] < 0.5).all()
    assert result.best_params["kernel"] in ("linear", "rbf") and result.classifier == "svc"
    assert result.train_size == 64


def test_with_only_reals_labelled_the_threshold_is_set_on_the_synthetic_fakes_too():
    data = _data(30)
    reals = data.take(data.y == 0)
    fakes = data.take(data.y == 1)
    synthetic = Embeddings(fakes.ids, fakes.uris, fakes.x, fakes.y, fakes.embedder, parents=reals.ids)
    training = train.with_synthetic(reals, synthetic)
    assert training.labelled().sum() == 30 and set(training.y[training.labelled()]) == {0}
    result = train.tune(training, data.take(np.arange(4)), TrainConfig(backend="loky", n_jobs=1), seed=0)
    # Both classes reached the threshold's folds: the separable fakes are caught, no real called fake.
    assert result.operating_point.macro_f1 == 1.0 and result.operating_point.false_alarm_rate == 0.0


def test_load_embeddings_keeps_labelled_ok_rows(tmp_path):
    import pyarrow.parquet as pq

    from fakeface_ray.storage.schema import to_table

    batch = {
        "image_id": np.array(["b", "a", "c", "d"], dtype=object),
        "uri": np.array(["/b", "/a", "/c", "/d"], dtype=object),
        "label": np.array(["fake", "real", None, "real"], dtype=object),
        "sha256": np.array(["1", "2", "3", "4"], dtype=object),
        "width": np.array([10, 10, 10, -1]), "height": np.array([10, 10, 10, -1]),
        "status": np.array(["ok", "ok", "ok", "decode_error"], dtype=object),
        "error": np.array(["", "", "", "bad"], dtype=object),
        "n_faces": np.array([1, 1, 1, 0]),
        "face_box": np.zeros((4, 4)), "face_confidence": np.array([0.9, 0.9, 0.9, np.nan]),
        "keypoints": np.zeros((4, 10)),
    }
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    vectors[3] = np.nan
    (tmp_path / "emb").mkdir()
    pq.write_table(to_table(batch, vectors, "test-3"), tmp_path / "emb" / "part.parquet")
    data = train.load_embeddings(tmp_path / "emb")
    assert list(data.ids) == ["a", "b"]
    assert data.y.tolist() == [0, 1]
    assert data.x.tolist() == [[3, 4, 5], [0, 1, 2]]


def test_saved_model_loads_only_with_its_recorded_sha256(tmp_path):
    result = train.fit(_data(20), TrainConfig(backend="loky", n_jobs=1, classifier="svc", c_grid=(1.0,), kernels=("linear",)), seed=0)
    from fakeface_ray.storage.locations import location

    save_artifact(result.artifact, location(tmp_path / "model"), {"seed": 0})
    artifact, metadata = load_artifact(tmp_path / "model")
    assert metadata["classes"] == ["real", "fake"]
    assert metadata["artifact_version"] == artifact.version == ARTIFACT_VERSION
    assert (artifact.embedder, artifact.dims) == (metadata["embedder"], metadata["dims"]) == (result.test.embedder, 6)
    assert artifact.threshold == result.artifact.threshold == result.operating_point.threshold
    assert (artifact.scores(result.test.x) == result.artifact.scores(result.test.x)).all()
    assert artifact.p_fake(artifact.scores(result.test.x)).shape == (len(result.test.y),)
    import joblib

    joblib.dump({"not": "the model"}, tmp_path / "model" / "classifier.joblib")
    with pytest.raises(ModelError, match="does not match"):
        load_artifact(tmp_path / "model")


def test_a_model_of_another_artifact_version_is_refused(tmp_path):
    import json

    result = train.fit(_data(20), TrainConfig(backend="loky", n_jobs=1, classifier="svc", c_grid=(1.0,), kernels=("linear",)), seed=0)
    from fakeface_ray.storage.locations import location

    save_artifact(result.artifact, location(tmp_path / "model"), {})
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    (tmp_path / "model" / "metadata.json").write_text(json.dumps({**metadata, "artifact_version": 0}))
    with pytest.raises(ModelError, match="artifact version 0"):
        load_artifact(tmp_path / "model")


def _with_copies(seed: int = 0) -> Embeddings:
    """60 rows per class in which some files appear two, three or four times (same sha256)."""
    data = _data(60, seed=seed)
    groups = np.arange(len(data.y))
    rng = np.random.default_rng(seed)
    for size in (2, 3, 4, 2, 3):
        for label in (0, 1):
            rows = rng.choice(np.flatnonzero((data.y == label) & (groups == np.arange(len(groups)))), size,
                              replace=False)
            groups[rows] = rows[0]
    return Embeddings(data.ids, data.uris, data.x, data.y, data.embedder, groups)


@pytest.mark.parametrize("seed", range(12))
def test_identical_bytes_land_on_one_side_of_the_split_and_of_every_fold(seed):
    data = _with_copies()
    train_part, test_part = train.split(data, 0.2, seed=seed)
    assert not set(train_part.groups) & set(test_part.groups)
    assert len(train_part.y) + len(test_part.y) == len(data.y)
    assert abs(len(test_part.y) - 24) <= 4  # still about 20%, each class about 20% of its rows
    assert all(abs(n - 12) <= 4 for n in np.bincount(test_part.y))
    folds = train.grouped_folds(train_part, 5, seed)
    seen = np.concatenate([validation for _, validation in folds])
    assert sorted(seen) == list(range(len(train_part.y)))  # a partition, as cross_val_predict needs
    for fit_rows, validation in folds:
        assert not set(train_part.groups[fit_rows]) & set(train_part.groups[validation])
        assert set(train_part.y[fit_rows]) == {0, 1}


def test_duplicate_groups_are_counted_in_the_result():
    data = _with_copies()
    alone = np.flatnonzero(np.bincount(data.groups, minlength=len(data.y))[data.groups] == 1)
    mixed = data.groups.copy()
    real, fake = alone[data.y[alone] == 0][0], alone[data.y[alone] == 1][0]
    mixed[fake] = mixed[real]  # one real and one fake file with the same bytes
    found = train.find_duplicates(Embeddings(data.ids, data.uris, data.x, data.y, data.embedder, mixed))
    assert found.to_dict() == {"groups": 11, "rows": 30, "mixed_labels": 1}
    result = train.fit(data, TrainConfig(backend="loky", n_jobs=1, classifier="svc", c_grid=(1.0,), kernels=("linear",)), seed=0)
    assert result.duplicates.to_dict() == {"groups": 10, "rows": 28, "mixed_labels": 0}


def _embeddings_folder(folder, ids, sha256s):
    import pyarrow.parquet as pq

    from fakeface_ray.storage.schema import to_table

    n = len(ids)
    batch = {"image_id": np.array(ids, dtype=object), "uri": np.array(ids, dtype=object),
             "label": np.array(["real", "fake"] * (n // 2), dtype=object), "sha256": np.array(sha256s, dtype=object),
             "width": np.full(n, 10), "height": np.full(n, 10), "status": np.array(["ok"] * n, dtype=object),
             "error": np.array([""] * n, dtype=object), "n_faces": np.ones(n), "face_box": np.zeros((n, 4)),
             "face_confidence": np.full(n, 0.9), "keypoints": np.zeros((n, 10))}
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table(batch, np.ones((n, 3), np.float32), "test-3"), folder / f"part-{len(list(folder.iterdir()))}.parquet")


def test_load_embeddings_groups_identical_bytes_and_refuses_an_image_twice(tmp_path):
    _embeddings_folder(tmp_path / "emb", ["a", "b", "c", "d"], ["s1", "s2", "s1", "s3"])
    data = train.load_embeddings(tmp_path / "emb")
    assert data.groups[0] == data.groups[2] and len(set(data.groups)) == 3
    _embeddings_folder(tmp_path / "emb", ["a", "e"], ["s1", "s4"])  # `a` again, as two runs at once wrote it
    with pytest.raises(TrainError, match="6 rows for 5 image_ids.*--resume"):
        train.load_embeddings(tmp_path / "emb")


def test_load_embeddings_refuses_a_folder_with_an_unreadable_part(tmp_path):
    from fakeface_ray.storage.parts import DamagedPartsError

    _embeddings_folder(tmp_path / "emb", ["a", "b"], ["s1", "s2"])
    part = next((tmp_path / "emb").iterdir())
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(DamagedPartsError, match="unreadable part.*--resume") as caught:
        train.load_embeddings(tmp_path / "emb")
    assert caught.value.exit_code == 2


def test_balanced_class_weight_reaches_every_classifier():
    for kind in classifiers.KINDS:
        model, _ = classifiers.build(kind, TrainConfig(), 100, 6, seed=0)
        assert model.named_steps["clf"].get_params()["class_weight"] == "balanced", kind
        model, _ = classifiers.build(kind, TrainConfig(class_weight="none"), 100, 6, seed=0)
        assert model.named_steps["clf"].get_params()["class_weight"] is None, kind
