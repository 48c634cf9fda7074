import pytest

from fakeface_ray.stages import sources
from fakeface_ray.stages.sources import SourceError, label_for, list_sources


@pytest.mark.parametrize("image_id, label", [
    ("training_real/real_00001.jpg", "real"),
    ("training_fake/easy_1_1000.jpg", "fake"),
    ("a/Real/x.png", "real"),
    ("fake/nested/dir/x.png", "fake"),
    ("x.jpg", None),
    ("unlabelled/x.jpg", None),
])
def test_label_from_nearest_class_folder(image_id, label):
    assert label_for(image_id) == label


def test_class_map_overrides_and_is_checked():
    assert label_for("originals/x.jpg", {"originals": "real"}) == "real"
    assert label_for("real/x.jpg", {"real": "fake"}) == "fake"
    with pytest.raises(SourceError, match="labels are"):
        label_for("x/y.jpg", {"x": "maybe"})


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_listing_filters_sorts_and_labels(tmp_path):
    _touch(tmp_path / "training_real" / "b.JPG")
    _touch(tmp_path / "training_real" / "a.jpeg")
    _touch(tmp_path / "training_fake" / "c.png")
    _touch(tmp_path / "training_fake" / ".hidden.jpg")
    _touch(tmp_path / ".cache" / "d.jpg")
    _touch(tmp_path / "notes.txt")
    found = list_sources(str(tmp_path), (".jpg", ".jpeg", ".png"))
    assert [s.image_id for s in found] == ["training_fake/c.png", "training_real/a.jpeg", "training_real/b.JPG"]
    assert [s.label for s in found] == ["fake", "real", "real"]
    assert found[0].uri == str(tmp_path / "training_fake" / "c.png")


def test_a_symlink_cycle_is_listed_once_and_other_links_are_followed(tmp_path):
    _touch(tmp_path / "in" / "real" / "a.jpg")
    _touch(tmp_path / "elsewhere" / "b.jpg")
    (tmp_path / "in" / "real" / "up").symlink_to(tmp_path / "in")  # back to a parent: a cycle
    (tmp_path / "in" / "fake").symlink_to(tmp_path / "elsewhere")
    found = list_sources(str(tmp_path / "in"), (".jpg",))
    assert [(s.image_id, s.label) for s in found] == [("fake/b.jpg", "fake"), ("real/a.jpg", "real")]


def test_file_uri_lists_and_reads(tmp_path):
    _touch(tmp_path / "real" / "a.jpg", b"abc")
    found = list_sources(f"file://{tmp_path}", (".jpg",))
    assert found[0].uri == f"file://{tmp_path}/real/a.jpg"
    assert sources.read_bytes(found[0].uri) == b"abc"


def test_missing_and_empty_inputs_are_user_errors(tmp_path):
    with pytest.raises(SourceError, match="input not found"):
        list_sources(str(tmp_path / "nope"), (".jpg",))
    with pytest.raises(SourceError, match="no images"):
        list_sources(str(tmp_path), (".jpg",))


def test_read_files_turns_a_vanished_file_into_an_error_row(tmp_path):
    import numpy as np

    _touch(tmp_path / "a.jpg", b"abc")
    batch = {"uri": np.array([str(tmp_path / "a.jpg"), str(tmp_path / "gone.jpg")], dtype=object)}
    out = sources.read_files(batch)
    assert out["bytes"][0] == b"abc" and out["read_error"][0] == ""
    assert out["sha256"][0] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert out["bytes"][1] == b"" and "cannot read file" in out["read_error"][1]
