"""TensorFlow device set-up for a stage's process, done once before its first op."""

from __future__ import annotations


def configure_tensorflow(device: str, num_threads: int | None) -> None:
    """GPU: memory growth on (else TF takes the whole card, breaking fractional GPUs).
    CPU: TF's thread pools capped to the CPUs Ray gave this actor.
    """
    import tensorflow as tf

    try:
        if device.upper().startswith("GPU"):
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        elif num_threads:
            tf.config.threading.set_intra_op_parallelism_threads(num_threads)
            tf.config.threading.set_inter_op_parallelism_threads(num_threads)
    except RuntimeError:
        # TF already ran an op in this process (two stages in one plain-Python process): its first
        # settings stay, which is what TF allows.
        pass
