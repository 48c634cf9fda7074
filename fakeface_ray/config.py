"""One frozen config tree: defaults in code, YAML files and `--set a.b=value` merged on top."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import UserError

# Every choice a config key offers, defined once; modules that act on a choice read it from here.
DetectorName = Literal["auto", "numpy", "tensorflow"]
EmbedderName = Literal["auto", "facenet", "forensic"]
Preprocessing = Literal["auto", "prewhiten", "fixed"]
JoblibBackend = Literal["ray", "loky"]
Kernel = Literal["linear", "rbf"]
ClassifierName = Literal["auto", "trees", "svc", "linear", "sgd", "nystroem"]
ClassWeight = Literal["balanced", "none"]
TreeFeatureRule = Literal["sqrt", "log2"]
ThresholdRule = Literal["boundary", "max_macro_f1", "one_se"]
SynthDonor = Literal["self", "other", "retouch"]
SynthBlend = Literal["alpha", "feather", "poisson"]
SpliceUse = Literal["none", "alone", "concat"]


def choices(vocabulary: Any) -> tuple[str, ...]:
    """The values of a `Literal[...]` vocabulary, in order."""
    return typing.get_args(vocabulary)


class ConfigError(UserError):
    """A config file or override the user must fix."""


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None
    num_cpus: int | None = None
    stall_timeout_s: float = 1800.0


@dataclass(frozen=True)
class ReadConfig:
    extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
    max_pixels: int = 60_000_000
    files_per_block: int = 16
    max_read_tasks: int = 1024

    def __post_init__(self) -> None:
        for name in ("files_per_block", "max_read_tasks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"read.{name} must be positive, got {getattr(self, name)}")
        from PIL import Image

        # Pillow refuses larger images on its own (decompression bombs) before this cap is read.
        if not 1 <= self.max_pixels <= Image.MAX_IMAGE_PIXELS:
            raise ConfigError(f"read.max_pixels must be between 1 and {Image.MAX_IMAGE_PIXELS} (Pillow's own "
                              f"limit, which refuses larger images first), got {self.max_pixels}")


@dataclass(frozen=True)
class OutputConfig:
    part_rows: int = 50_000
    part_bytes: int = 128 << 20
    commit_interval_s: float = 60.0
    row_group_rows: int = 50_000
    lock_heartbeat_s: float = 60.0
    lock_stale_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("part_rows", "part_bytes", "row_group_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"output.{name} must be positive, got {getattr(self, name)}")
        if self.commit_interval_s <= 0 or self.lock_heartbeat_s <= 0:
            raise ConfigError("output.commit_interval_s and output.lock_heartbeat_s must be positive")
        if self.lock_stale_s <= 2 * self.lock_heartbeat_s:
            raise ConfigError(f"output.lock_stale_s ({self.lock_stale_s:g}) must exceed two heartbeats "
                              f"(output.lock_heartbeat_s {self.lock_heartbeat_s:g}), or live runs look stale")


# The mtcnn package counts its pyramid's levels without min_face_size: above 20 px the last levels fall
# under P-Net's 12 px window for most image sizes, and the package then finds no face in the image.
PACKAGE_MAX_MIN_FACE_SIZE = 20


def detector_runtime(name: DetectorName, on_gpu: bool) -> str:
    """How MTCNN runs for `extract.detector`: "numpy", or "tensorflow" (the mtcnn package).

    auto is numpy on CPUs and the package on a GPU, where TensorFlow runs the networks on the card.
    """
    if name == "auto":
        return "tensorflow" if on_gpu else "numpy"
    return name


@dataclass(frozen=True)
class ExtractConfig:
    margin: float = 0.2
    face_size: int = 160
    min_face_size: int = 20
    detect_max_side: int = 320
    region_max_side: int = 1024
    batch_size: int = 8
    detector: DetectorName = "auto"
    device: str = "CPU:0"
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    max_actors: int | None = None

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ConfigError(f"extract.margin must be >= 0, got {self.margin}")
        if self.detect_max_side < 0:
            raise ConfigError(f"extract.detect_max_side must be >= 0 (0 = full resolution), got {self.detect_max_side}")
        if self.min_face_size < 1:
            raise ConfigError(f"extract.min_face_size must be positive, got {self.min_face_size}")
        if self.detector == "numpy" and self.num_gpus:
            raise ConfigError("extract.detector=numpy runs on CPUs only; with extract.num_gpus > 0 use auto or tensorflow")
        if (detector_runtime(self.detector, self.on_gpu) == "tensorflow"
                and self.min_face_size > PACKAGE_MAX_MIN_FACE_SIZE):
            raise ConfigError(f"extract.min_face_size={self.min_face_size} with the mtcnn package (extract.detector="
                              f"{self.detector}{' on GPUs' if self.detector == 'auto' else ''}) finds no face: its "
                              f"pyramid runs under its 12 px window above {PACKAGE_MAX_MIN_FACE_SIZE}. Use at most "
                              f"{PACKAGE_MAX_MIN_FACE_SIZE}, or extract.detector=numpy on CPUs")

    @property
    def on_gpu(self) -> bool:
        """Whether the extract actors run on GPUs (the pipeline gives an actor with a GPU the device GPU:0)."""
        return self.num_gpus > 0 or self.device.upper().startswith("GPU")


@dataclass(frozen=True)
class EmbedConfig:
    embedder: EmbedderName = "auto"
    weights: str = "model/facenet_keras.h5"
    preprocess: Preprocessing = "auto"
    batch_size: int = 16
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    max_actors: int | None = None

    def __post_init__(self) -> None:
        if self.embedder != "facenet" and self.num_gpus:
            raise ConfigError(f"embed.embedder={self.embedder} is the forensic embedder, which runs on CPUs only; "
                              "embed.num_gpus > 0 needs embed.embedder=facenet")


@dataclass(frozen=True)
class SynthConfig:
    variants: int = 0
    jpeg_quality: tuple[int, ...] = (70, 96)
    donors: tuple[SynthDonor, ...] = ("self", "other", "retouch")
    blends: tuple[SynthBlend, ...] = ("alpha", "feather", "poisson")

    def __post_init__(self) -> None:
        if self.variants < 0:
            raise ConfigError(f"synth.variants must be >= 0, got {self.variants}")
        if len(self.jpeg_quality) != 2 or not 1 <= self.jpeg_quality[0] < self.jpeg_quality[1] <= 101:
            raise ConfigError(f"synth.jpeg_quality must be [low, high) within 1..101, got {list(self.jpeg_quality)}")
        if not self.donors or not self.blends:
            raise ConfigError("synth.donors and synth.blends must each name at least one kind")


@dataclass(frozen=True)
class SpliceConfig:
    use: SpliceUse = "none"
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 1e-3
    fake_fraction: float = 0.5
    boundary_weight: float = 1.0
    min_reals: int = 10
    cross_fit_folds: int = 3
    workers: int = 1
    use_gpu: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.workers < 1:
            raise ConfigError("splice.epochs, splice.batch_size and splice.workers must be positive")
        if self.cross_fit_folds == 1 or self.cross_fit_folds < 0:
            raise ConfigError(f"splice.cross_fit_folds must be 0 (off) or at least 2, got {self.cross_fit_folds}")
        if not 0.0 < self.fake_fraction < 1.0:
            raise ConfigError(f"splice.fake_fraction must be between 0 and 1, got {self.fake_fraction}")


@dataclass(frozen=True)
class TrainConfig:
    test_split: float = 0.2
    cv_folds: int = 5
    kernels: tuple[Kernel, ...] = ("linear", "rbf")
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    gamma_grid: tuple[str | float, ...] = ("scale", 0.01, 0.1)
    scoring: str = "f1_macro"
    backend: JoblibBackend = "ray"
    n_jobs: int = -1
    threshold: ThresholdRule = "one_se"
    min_fake_recall: float | None = None
    false_alarm_allowance: float | None = 0.2
    classifier: ClassifierName = "auto"
    nystroem_components: int = 500
    class_weight: ClassWeight = "balanced"
    tree_count: int = 500
    tree_leaf_grid: tuple[int, ...] = (2, 4)
    tree_max_features: int | TreeFeatureRule = "sqrt"

    def __post_init__(self) -> None:
        if self.tree_count < 1:
            raise ConfigError(f"train.tree_count must be positive, got {self.tree_count}")
        if isinstance(self.tree_max_features, int) and self.tree_max_features < 1:
            raise ConfigError(f"train.tree_max_features must be a positive count, sqrt or log2, "
                              f"got {self.tree_max_features}")
        if not self.tree_leaf_grid or any(leaf < 1 for leaf in self.tree_leaf_grid):
            raise ConfigError("train.tree_leaf_grid must hold positive integers")
        if self.nystroem_components < 1:
            raise ConfigError(f"train.nystroem_components must be positive, got {self.nystroem_components}")
        if not 0.0 < self.test_split < 1.0:
            raise ConfigError(f"train.test_split (--testsplit) must be between 0 and 1, got {self.test_split}")
        if self.cv_folds < 2:
            raise ConfigError(f"train.cv_folds must be at least 2, got {self.cv_folds}")
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise ConfigError("train.c_grid must hold positive numbers")
        if self.min_fake_recall is not None and not 0.0 < self.min_fake_recall <= 1.0:
            raise ConfigError(f"train.min_fake_recall must be in (0, 1], got {self.min_fake_recall}")
        if self.false_alarm_allowance is not None and not 0.0 <= self.false_alarm_allowance < 1.0:
            raise ConfigError(f"train.false_alarm_allowance must be in [0, 1), got {self.false_alarm_allowance}")


@dataclass(frozen=True)
class PredictConfig:
    fake_share: float | None = None

    def __post_init__(self) -> None:
        if self.fake_share is not None and not 0.0 < self.fake_share < 1.0:
            raise ConfigError(f"predict.fake_share (--fake-share) must be between 0 and 1, got {self.fake_share}")


@dataclass(frozen=True)
class ReportConfig:
    samples_per_class: int = 16


@dataclass(frozen=True)
class AuditConfig:
    max_per_class: int = 2000
    max_auc: float = 0.7

    def __post_init__(self) -> None:
        if self.max_per_class < 5:
            raise ConfigError(f"audit.max_per_class must be at least 5, got {self.max_per_class}")
        if not 0.5 <= self.max_auc < 1.0:
            raise ConfigError(f"audit.max_auc must be in [0.5, 1), got {self.max_auc}")


@dataclass(frozen=True)
class ConsoleConfig:
    verbose: bool = False
    progress_interval_s: float = 30.0

    def __post_init__(self) -> None:
        if self.progress_interval_s <= 0:
            raise ConfigError(f"console.progress_interval_s must be positive, got {self.progress_interval_s}")


@dataclass(frozen=True)
class Config:
    infile: str = "data/real_and_fake_face"
    out: str = "runs/latest"
    seed: int = 0
    class_map: dict[str, str] = field(default_factory=dict)
    max_error_fraction: float | None = None
    ray: RayConfig = RayConfig()
    read: ReadConfig = ReadConfig()
    output: OutputConfig = OutputConfig()
    extract: ExtractConfig = ExtractConfig()
    embed: EmbedConfig = EmbedConfig()
    synth: SynthConfig = SynthConfig()
    splice: SpliceConfig = SpliceConfig()
    train: TrainConfig = TrainConfig()
    predict: PredictConfig = PredictConfig()
    report: ReportConfig = ReportConfig()
    audit: AuditConfig = AuditConfig()
    console: ConsoleConfig = ConsoleConfig()

    def __post_init__(self) -> None:
        if self.max_error_fraction is not None and not 0.0 <= self.max_error_fraction <= 1.0:
            raise ConfigError(f"max_error_fraction must be between 0 and 1, got {self.max_error_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists), ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))


def load_config(files: typing.Sequence[str | Path] = (), overrides: typing.Sequence[str] = (),
                **values: Any) -> Config:
    """Build a Config from defaults, then each YAML file, then `a.b=value` overrides, then values.

    Args:
        overrides: strings `dotted.key=value`; the value is parsed as YAML (`1e-3`, `[a, b]`, `null`).
        values: dotted keys given as Python keyword names with `__` for `.` (e.g. `train__test_split`).
    """
    merged: dict[str, Any] = Config().to_dict()
    for path in files:
        _deep_merge(merged, _read_yaml(Path(path)), where=str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
        _deep_merge(merged, _nest(key.strip(), value), where=f"--set {item}")
    for key, value in values.items():
        if value is not None:
            _deep_merge(merged, _nest(key.replace("__", "."), value), where=f"--{key}")
    return _build(Config, merged, prefix="")


def dump_config(config: Config) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _deep_merge(base: dict[str, Any], update: dict[str, Any], where: str, prefix: str = "") -> None:
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            hint = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            suggestion = f"; did you mean '{prefix}{hint[0]}'?" if hint else ""
            raise ConfigError(f"{where}: unknown config key '{dotted}'{suggestion}")
        if isinstance(base[key], dict) and isinstance(value, dict) and key != "class_map":
            _deep_merge(base[key], value, where, prefix=f"{dotted}.")
        else:
            base[key] = value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], dotted)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, dotted: str) -> Any:
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"'{dotted}' must be a mapping, got {value!r}")
        return _build(tp, value, prefix=f"{dotted}.")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, dotted)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"'{dotted}': invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(args[0], v, f"{dotted}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{dotted}' must be a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{dotted}.{k}") for k, v in value.items()}
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"'{dotted.split('[')[0]}' must be one of {', '.join(args)}; got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{dotted}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{dotted}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{dotted}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{dotted}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} for {dotted}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
