"""Training the splice-v1 network: the training split's reals, fakes synthesised from them on the fly,
and the split's labelled fakes; one Ray Train run (TensorflowTrainer) is its home.

Every epoch draws new synthetic fakes (as Self-Blended Images does), so the network sees many more
blends than there are images. A labelled fake teaches the image-level logit only: where it was
edited is unknown, so its boundary maps carry no weight.
"""

from __future__ import annotations

import hashlib
import json
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SpliceConfig, SynthConfig
from ..errors import UserError
from ..stages import blends, imaging
from ..stages.embedders.splice import MAP, METADATA, NAME, PATCH, WEIGHTS, boundary_targets
from ..stages.faces import PARTS, part_patches
from ..stages.synth import choose_donors, variant_rng
from ..storage.locations import Location, read_bytes


class SpliceTrainingError(UserError):
    """Too little to train the splice network on (say which, and what the run does instead)."""


@dataclass(frozen=True)
class TrainingImage:
    """One image of the training split: where it is, its landmarks, its label (0 real, 1 fake)."""

    image_id: str
    uri: str
    keypoints: tuple[float, ...]
    label: int


def check_training_set(images: list[TrainingImage], config: SpliceConfig, small_faces: int = 0) -> None:
    """Refuse a training set with too few reals to synthesise from.

    Args:
        small_faces: training reals left out because their face is smaller than a patch (said in the message).
    """
    reals = sum(1 for i in images if i.label == 0)
    if reals < config.min_reals:
        left_out = f" ({small_faces} more have faces under {PATCH} px, the network's input)" if small_faces else ""
        raise SpliceTrainingError(f"{reals} usable training reals{left_out}, fewer than "
                                  f"splice.min_reals={config.min_reals}")


def worker_share(images: list, rank: int, workers: int) -> list:
    """The images one Ray Train worker trains on: every `workers`-th, from its rank."""
    return images[rank::workers]


def check_worker_shares(networks: dict[str, list[TrainingImage]], config: SpliceConfig, synth: SynthConfig) -> None:
    """Refuse networks that leave a worker too few reals to synthesise from (each trains on its own share):
    one, or two where `synth.donors` allows only another face's parts."""
    needed = 2 if set(synth.donors) == {"other"} else 1
    for name, images in networks.items():
        reals = [sum(i.label == 0 for i in worker_share(images, rank, config.workers)) for rank in range(config.workers)]
        if min(reals) < needed:
            raise SpliceTrainingError(f"splice.workers={config.workers} leaves a worker of {name} ({len(images)} "
                                      f"images, {sum(reals)} reals) {min(reals)} training reals, fewer than the "
                                      f"{needed} it synthesises from; use fewer workers")


def check_resources(config: SpliceConfig, resources: dict[str, float]) -> None:
    """Refuse up front what the cluster cannot run (Ray Train would wait for it forever)."""
    if config.use_gpu and resources.get("GPU", 0) < config.workers:
        raise SpliceTrainingError(f"splice.use_gpu asks for {config.workers} GPU workers but the cluster has "
                                  f"{resources.get('GPU', 0):g} GPUs; set splice.use_gpu=false")
    if resources.get("CPU", 0) < config.workers:
        raise SpliceTrainingError(f"splice.workers={config.workers} needs a CPU each; the cluster has "
                                  f"{resources.get('CPU', 0):g}")


def epoch_examples(pixels: list[np.ndarray], images: list[TrainingImage], donors: np.ndarray,
                   config: SpliceConfig, synth: SynthConfig, seed: int, epoch: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's (patches [N,4,P,P,3] uint8, image labels [N,1], boundary targets [N,4,M,M,2]).

    The boundary target's second channel is its weight: 1 for reals and synthetic fakes, 0 for
    labelled fakes. A real becomes a fresh synthetic fake with probability `fake_fraction`.
    """
    patches, labels, targets = [], [], []
    for n, (image, item) in enumerate(zip(pixels, images)):
        rng = variant_rng(seed, item.image_id, 10_000 + epoch)
        keypoints = np.asarray(item.keypoints, dtype=np.float64)
        weight = 1.0
        boundary = np.zeros((len(PARTS), MAP, MAP, 1), np.float32)
        if item.label == 1:
            weight = 0.0
            cut = part_patches(image, keypoints, PATCH)
        elif rng.random() < config.fake_fraction:
            donor = (pixels[donors[n]], np.asarray(images[donors[n]].keypoints)) if donors[n] >= 0 else None
            fake = blends.synthesize(image, keypoints, rng, donor=donor, quality=tuple(synth.jpeg_quality),
                                     donors=synth.donors, blends=synth.blends)
            cut = part_patches(fake.pixels, keypoints, PATCH)
            boundary = boundary_targets(fake.mask, keypoints)
        else:
            cut = part_patches(image, keypoints, PATCH)
        fake_label = float(item.label == 1 or boundary.max() > 0)
        patches.append(cut)
        labels.append([fake_label])
        targets.append(np.concatenate([boundary, np.full_like(boundary, weight)], axis=-1))
    return np.stack(patches), np.array(labels, np.float32), np.stack(targets)


def fit_splice(images: list[TrainingImage], config: SpliceConfig, synth: SynthConfig, seed: int,
               strategy=None) -> tuple[object, list[dict]]:
    """Train on `images` (this worker's share); returns the patch network and the per-epoch history.

    A plain TensorFlow loop under a `tf.distribute` strategy: Ray Train's workers pass
    MultiWorkerMirroredStrategy, which all-reduces the gradients; None trains in this process alone.
    """
    import keras
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from ..stages.embedders.splice import build_patch_net

    strategy = strategy or tf.distribute.get_strategy()
    pixels = [_decode(i) for i in images]
    reals = [n for n, i in enumerate(images) if i.label == 0]
    donor_of_real = choose_donors(np.array([images[n].keypoints for n in reals]), seed)
    donors = np.full(len(images), -1)
    for k, n in enumerate(reals):
        donors[n] = reals[donor_of_real[k]] if donor_of_real[k] >= 0 else -1
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        net = build_patch_net()
        optimizer = keras.optimizers.Adam(config.learning_rate)
    parts = len(PARTS)
    global_batch = config.batch_size * strategy.num_replicas_in_sync

    def losses(x, y, b, training):
        logits, maps, _ = net(tf.reshape(x, (-1, PATCH, PATCH, 3)), training=training)
        image_logit = tf.reduce_max(tf.reshape(logits, (-1, parts)), axis=1, keepdims=True)
        fake = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=image_logit)[:, 0]
        maps = tf.clip_by_value(tf.reshape(maps, (-1, parts, MAP, MAP)), 1e-6, 1 - 1e-6)
        target, weight = b[..., 0], b[..., 1]
        cells = -(target * tf.math.log(maps) + (1 - target) * tf.math.log(1 - maps))
        boundary = tf.reduce_sum(cells * weight, axis=[1, 2, 3]) / (parts * MAP * MAP)
        return fake + config.boundary_weight * boundary, image_logit

    @tf.function
    def step(x, y, b):
        def replica(x, y, b):
            with tf.GradientTape() as tape:
                per_example, _ = losses(x, y, b, True)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(loss, net.trainable_variables)
            optimizer.apply_gradients(zip(grads, net.trainable_variables))
            return loss

        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica, args=(x, y, b)), axis=None)

    history = []
    for epoch in range(config.epochs):
        started = time.perf_counter()
        x, y, b = epoch_examples(pixels, images, donors, config, synth, seed, epoch)
        batches = strategy.experimental_distribute_dataset(_batches(x, y, b, global_batch, seed + epoch))
        total, count = 0.0, 0
        for bx, by, bb in batches:
            total += float(step(bx, by, bb))
            count += 1
        scores = np.concatenate([losses(tf.constant(x[i:i + 32], tf.float32), tf.constant(y[i:i + 32]),
                                        tf.constant(b[i:i + 32]), False)[1].numpy()
                                 for i in range(0, len(x), 32)]).reshape(-1)
        both = len(np.unique(y)) == 2
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1),
                        "train_auc": float(roc_auc_score(y.reshape(-1), scores)) if both else None,
                        "examples": int(len(y)), "seconds": time.perf_counter() - started})
    return net, history


def _batches(x: np.ndarray, y: np.ndarray, b: np.ndarray, batch_size: int, seed: int):
    """A shuffled tf.data dataset of one epoch; each worker feeds its own share (no auto-sharding)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y, b.astype(np.float32)))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return data.shuffle(len(x), seed=seed).batch(batch_size).with_options(options)


def _decode(item: TrainingImage) -> np.ndarray:
    decoded = imaging.decode_image(read_bytes(item.uri), 200_000_000)
    if decoded.image is None:
        raise SpliceTrainingError(f"{item.image_id}: {decoded.error}")
    return decoded.image


def save_splice(patch_net, folder: Path, history: list[dict], extra: dict) -> dict:
    """Write the weights and `splice.json` (with the weights' sha256) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    patch_net.save_weights(folder / WEIGHTS)
    metadata = {"embedder": NAME, "patch": PATCH, "parts": list(PARTS), "history": history, **extra,
                "sha256": hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()}
    (folder / METADATA).write_text(json.dumps(metadata, indent=2))
    return metadata


def train_loop_per_worker(loop: dict) -> None:
    """Ray Train's entry point on each worker: each network in turn on its share of that network's
    images, one strategy for all; rank 0 saves them, one folder each, in one checkpoint."""
    import ray.train
    import tensorflow as tf

    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if size > 1 else None
    config, synth = SpliceConfig(**loop["splice"]), SynthConfig(**loop["synth"])
    losses = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, listed in loop["networks"].items():
            images = worker_share([TrainingImage(**i) for i in listed], rank, size)
            patch_net, history = fit_splice(images, config, synth, loop["seed"] + rank, strategy)
            losses[name] = history[-1]["loss"]
            if rank == 0:
                save_splice(patch_net, Path(folder) / name, history, {})
        checkpoint = ray.train.Checkpoint.from_directory(folder) if rank == 0 else None
        ray.train.report({"loss": max(losses.values())}, checkpoint=checkpoint)


def training_key(images: list[TrainingImage], config: SpliceConfig, synth: SynthConfig, seed: int) -> str:
    """sha256 of what a training depends on: the images and labels, the settings, the seed.

    A rerun (`--resume`, `train` again) with the same key reuses the saved network.
    """
    from dataclasses import asdict

    ignored = ("use", "workers", "use_gpu", "min_reals", "cross_fit_folds")  # the images say what the folds did
    settings = {k: v for k, v in asdict(config).items() if k not in ignored}
    facts = {"images": sorted((i.image_id, i.uri, i.label, list(i.keypoints)) for i in images),
             "splice": settings, "synth": asdict(synth), "seed": seed, "embedder": NAME}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=list).encode()).hexdigest()


@contextmanager
def _sigint_restored() -> Iterator[None]:
    """Put back the SIGINT handler that Ray Train's `fit()` replaces and never restores.

    Its handler holds the run's controller actor, which then outlives the run, and it turns a later
    Ctrl-C into an abort of that finished run (the third one exits with status 0) instead of an interrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # Ray Train registers no handler off the main thread
        return
    before = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def train_splice(networks: dict[str, list[TrainingImage]], config: SpliceConfig, synth: SynthConfig, seed: int,
                 folder: Location, storage: str) -> dict[str, dict]:
    """Train each named network on its images in one Ray Train run (TensorflowTrainer, `config.workers`
    workers), and put each in `folder / name`.

    The caller checks the training sets (`check_training_set`) first. One run for all saves each
    further network the workers' start-up: TensorFlow's import, the process group, the checkpoint.

    Args:
        folder: where the networks' folders go (a run's `model/splice`; a path or URI).
        storage: Ray Train's run folder (its checkpoints): a path every worker's node can write, or a URI.
    Returns: each network's saved metadata, with its training key, sizes and a share of the time.
    """
    from dataclasses import asdict

    from ray.train import RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    import ray

    check_resources(config, ray.cluster_resources())
    started = time.perf_counter()
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config={"networks": {name: [asdict(i) for i in images] for name, images in networks.items()},
                           "splice": asdict(config), "synth": asdict(synth), "seed": seed},
        scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu),
        run_config=RunConfig(name="splice", storage_path=storage),
    )
    with _sigint_restored():
        result = trainer.fit()
    seconds = time.perf_counter() - started
    total = sum(len(images) for images in networks.values())
    saved_all = {}
    with result.checkpoint.as_directory() as saved:
        for name, images in networks.items():
            (folder / name).mkdir()
            (folder / name / WEIGHTS).write_bytes((Path(saved) / name / WEIGHTS).read_bytes())
            metadata = json.loads((Path(saved) / name / METADATA).read_text())
            metadata.update({"seconds": seconds * len(images) / total, "workers": config.workers,
                             "use_gpu": config.use_gpu, "training_images": len(images),
                             "training_reals": sum(i.label == 0 for i in images),
                             "training_key": training_key(images, config, synth, seed),
                             "image_ids": sorted(i.image_id for i in images)})  # what it saw: audits, the tests
            (folder / name / METADATA).write_text(json.dumps(metadata, indent=2))
            saved_all[name] = metadata
    return saved_all
