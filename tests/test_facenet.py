"""FaceNet built in code, loaded from weight files written in the published Keras 2 layouts."""

import numpy as np
import pytest

from fakeface_ray.config import EmbedConfig
from fakeface_ray.stages.embedders import EmbedderError, load_embedder
from fakeface_ray.stages.embedders.facenet import FaceNetEmbedder, build_inception_resnet_v1, model_weights, preprocess
from fakeface_ray.stages.embedders.facenet_weights import WeightFileError, read_weight_file, write_weight_file

from .models import seed_weights
from .photos import face_photo

pytestmark = pytest.mark.slow
LAYOUTS = ("keras2-full-model", "keras2-weights")


def _file_layers(model):
    """Layers as the published files list them: every layer, weightless ones with no weights."""
    weights = model_weights(model)
    return {layer.name: weights.get(layer.name, {}) for layer in model.layers}


@pytest.fixture(scope="module", params=[128, 512])
def reference(request, tmp_path_factory):
    model = build_inception_resnet_v1(request.param)
    seed_weights(model, seed=request.param)
    folder = tmp_path_factory.mktemp(f"facenet{request.param}")
    files = {}
    for layout in LAYOUTS:
        files[layout] = folder / f"{layout}.h5"
        write_weight_file(files[layout], _file_layers(model), layout)
    return request.param, model, files


@pytest.fixture(scope="module")
def crops():
    return np.stack([face_photo(i, 160) for i in (0, 1, 2)])


def test_parameter_counts(reference):
    dims, model, _ = reference
    # 128: the published facenet_keras.h5's count. 512: 1792 x 384 bottleneck weights and 3 x 384
    # batch-norm values more (beta, moving mean and variance; no scale).
    assert model.count_params() == {128: 22_808_144, 512: 22_808_144 + 1792 * 384 + 3 * 384}[dims]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_loading_reproduces_the_in_memory_model(reference, crops, layout):
    dims, model, files = reference
    embedder = FaceNetEmbedder(files[layout], batch_size=2)
    assert embedder.dims == dims and embedder.name == f"facenet-{dims}"
    assert embedder.preprocess == ("prewhiten" if dims == 128 else "fixed")
    expected = np.asarray(model(preprocess(crops, embedder.preprocess), training=False))
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    got = embedder.embed(crops)
    assert got.shape == (3, dims) and got.dtype == np.float32
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    info = read_weight_file(files[layout])
    assert info.layout == layout and info.n_parameters == model.count_params()
    assert len(info.sha256) == 64


def _edit(src, dst, layout, change):
    import shutil

    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as handle:
        root = handle["model_weights"] if layout == "keras2-full-model" else handle
        change(root)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_transposed_or_missing_weight_is_refused_by_name(reference, tmp_path, layout):
    dims, _, files = reference

    def transpose(root):
        data = np.asarray(root["Bottleneck/Bottleneck/kernel:0"])
        del root["Bottleneck/Bottleneck/kernel:0"]
        root.create_dataset("Bottleneck/Bottleneck/kernel:0", data=data.T.copy())

    def swap(root):  # a square kernel cannot show a transpose; a non-square conv kernel can
        name = "Block17_3_Branch_1_Conv2d_0b_1x7/Block17_3_Branch_1_Conv2d_0b_1x7/kernel:0"
        data = np.asarray(root[name])
        del root[name]
        root.create_dataset(name, data=np.transpose(data, (1, 0, 2, 3)).copy())

    def drop(root):
        group = root["Block17_3_Branch_1_Conv2d_0b_1x7_BatchNorm"]
        names = [n for n in group.attrs["weight_names"] if b"moving_mean" not in n]
        group.attrs["weight_names"] = np.array(names)

    _edit(files[layout], tmp_path / "t.h5", layout, transpose)
    transposed = r"'Bottleneck/kernel' has shape \(%d, 1792\), the model needs \(1792, dims\)" % dims
    with pytest.raises(WeightFileError, match=transposed):
        FaceNetEmbedder(tmp_path / "t.h5")
    _edit(files[layout], tmp_path / "s.h5", layout, swap)
    swapped = r"'Block17_3_Branch_1_Conv2d_0b_1x7/kernel' has shape \(7, 1, 128, 128\), the model needs \(1, 7, 128, 128\)"
    with pytest.raises(WeightFileError, match=swapped):
        FaceNetEmbedder(tmp_path / "s.h5")
    _edit(files[layout], tmp_path / "m.h5", layout, drop)
    with pytest.raises(WeightFileError, match="Block17_3_Branch_1_Conv2d_0b_1x7_BatchNorm/moving_mean' is missing"):
        FaceNetEmbedder(tmp_path / "m.h5")


def test_truncated_missing_and_foreign_files_are_refused(reference, tmp_path):
    _, _, files = reference
    data = files["keras2-weights"].read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightFileError, match="cut.h5"):
        read_weight_file(tmp_path / "cut.h5")
    (tmp_path / "notes.h5").write_text("hello")
    with pytest.raises(WeightFileError, match="notes.h5 is not a readable HDF5 file"):
        read_weight_file(tmp_path / "notes.h5")
    with pytest.raises(EmbedderError, match="not found: .*absent.h5.*model/README.md"):
        load_embedder(EmbedConfig(embedder="facenet", weights=str(tmp_path / "absent.h5")))


def test_preprocessing_keeps_rgb_order():
    red = np.zeros((1, 160, 160, 3), np.uint8)
    red[..., 0] = 255
    fixed = preprocess(red, "fixed")
    assert fixed[0, 0, 0].tolist() == pytest.approx([127.5 / 128, -127.5 / 128, -127.5 / 128])
    white = preprocess(red, "prewhiten")
    assert white[0, 0, 0, 0] > 0 > white[0, 0, 0, 1]


def test_check_weights_command(reference, tmp_path):
    from click.testing import CliRunner

    from fakeface_ray.cli import cli

    dims, model, files = reference
    result = CliRunner().invoke(cli, ["check-weights", str(files["keras2-full-model"])])
    assert result.exit_code == 0, result.output
    assert "keras2-full-model" in result.output and f"dims       {dims}" in result.output
    assert f"parameters {model.count_params()}" in result.output and f"facenet-{dims}" in result.output
    missing = CliRunner().invoke(cli, ["check-weights", str(tmp_path / "none.h5")])
    assert missing.exit_code == 2 and "not found" in missing.output and "Traceback" not in missing.output
