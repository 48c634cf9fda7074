import pytest

from fakeface_ray.config import Config, ConfigError, dump_config, load_config


def test_defaults_match_the_original_flags():
    config = load_config()
    assert config.infile == "data/real_and_fake_face"
    assert config.train.test_split == 0.2
    assert config == Config()


def test_yaml_then_set_then_values_merge_in_order(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("train:\n  c_grid: [0.5, 1, 2]\n  backend: loky\nextract:\n  margin: 0\n")
    config = load_config([path], ["train.backend=ray", "train.kernels=[linear]"], train__test_split=0.3)
    assert config.train.c_grid == (0.5, 1.0, 2.0)
    assert config.train.backend == "ray"
    assert config.train.kernels == ("linear",)
    assert config.train.test_split == 0.3
    assert config.extract.margin == 0.0


def test_none_values_leave_defaults():
    assert load_config(infile=None, train__test_split=None) == Config()


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="unknown config key 'train.test_splt'; did you mean 'train.test_split'"):
        load_config(overrides=["train.test_splt=0.1"])


@pytest.mark.parametrize("override, message", [
    ("train.cv_folds=five", "must be an integer"),
    ("extract.margin=[1]", "must be a number"),
    ("embed.embedder=clip", "must be one of auto, facenet, forensic"),
    ("embed.num_gpus=0.25", "forensic embedder, which runs on CPUs only"),
    ("train.test_split=1.5", "between 0 and 1"),
    ("train.tree_leaf_grid=[0, 2]", "tree_leaf_grid must hold positive integers"),
    ("train.tree_max_features=0", "tree_max_features must be a positive count, sqrt or log2"),
    ("train.tree_max_features=0.5", "'train.tree_max_features': invalid value 0.5"),
    ("train.false_alarm_allowance=1.0", r"false_alarm_allowance must be in \[0, 1\)"),
    ("train.classifier=forest", "must be one of auto, trees, svc"),
    ("train=3", "must be a mapping"),
    ("read.max_pixels=100000000", "must be between 1 and 89478485 \\(Pillow's own limit"),
    ("novalue", "expects key=value"),
])
def test_bad_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config([path])


def test_dump_round_trips(tmp_path):
    config = load_config(overrides=["train.gamma_grid=[scale, 0.5]", "class_map={orig: real}"])
    path = tmp_path / "dump.yaml"
    path.write_text(dump_config(config))
    assert load_config([path]) == config


def test_default_yaml_lists_every_key():
    from pathlib import Path

    import yaml

    shipped = yaml.safe_load((Path(__file__).parents[1] / "configs" / "default.yaml").read_text())
    assert shipped == Config().to_dict()


def test_the_original_config_is_the_original_svc_and_every_shipped_config_loads():
    from pathlib import Path

    shipped = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert {p.name for p in shipped} >= {"default.yaml", "original.yaml", "local.yaml"}
    for path in shipped:
        load_config([path])  # an unknown key or a bad value raises ConfigError
    original = load_config([Path(__file__).parents[1] / "configs" / "original.yaml"]).train
    # SVC.predict on an unweighted SVC: the boundary, 0, whatever the folds say.
    assert (original.classifier, original.class_weight, original.threshold) == ("svc", "none", "boundary")
    assert original.false_alarm_allowance is None and original.scoring == "accuracy"
