import pytest

from fakeface_ray.config import ConfigError, EmbedConfig, ExtractConfig, ReadConfig
from fakeface_ray.cluster.plan import READ_TASK_CPUS, PlanError, plan_pools, read_tasks


FACENET = EmbedConfig(embedder="facenet")


def _resolved(embed, embedder="facenet"):
    import dataclasses

    return dataclasses.replace(embed, embedder=embedder)


def _used(plan):
    return plan.extract.max_size * plan.extract.num_cpus + plan.embed.max_size * plan.embed.num_cpus


def test_two_cpus_leave_room_for_reads():
    plan = plan_pools({"CPU": 2.0}, ExtractConfig(), FACENET)
    assert (plan.extract.max_size, plan.embed.max_size) == (2, 1)
    assert _used(plan) + 2 * READ_TASK_CPUS <= 2.0


def test_the_cpus_are_split_by_the_embedders_cost():
    forensic = EmbedConfig(embedder="forensic")  # 58 ms a face against extract's 45: the larger pool
    assert [(p.extract.max_size, p.embed.max_size) for p in
            (plan_pools({"CPU": 2.0}, ExtractConfig(), e) for e in (FACENET, forensic))] == [(2, 1), (1, 2)]
    big_facenet, big_forensic = (plan_pools({"CPU": 16.0}, ExtractConfig(), e) for e in (FACENET, forensic))
    assert big_facenet.extract.max_size >= 2 * big_facenet.embed.max_size
    assert big_forensic.embed.max_size > big_forensic.extract.max_size
    assert _used(big_forensic) + 2 * READ_TASK_CPUS <= 16.0
    with pytest.raises(ValueError, match="resolved embedder"):
        plan_pools({"CPU": 2.0}, ExtractConfig(), EmbedConfig())


def test_pools_grow_with_the_cluster_and_respect_caps():
    plan = plan_pools({"CPU": 16.0}, ExtractConfig(), FACENET)
    assert plan.extract.max_size >= 8 and plan.embed.max_size >= 2
    assert _used(plan) + 2 * READ_TASK_CPUS <= 16.0
    capped = plan_pools({"CPU": 16.0}, ExtractConfig(max_actors=2), EmbedConfig(embedder="facenet", max_actors=1))
    assert (capped.extract.max_size, capped.embed.max_size) == (2, 1)


def test_gpu_request_without_gpu_is_refused():
    with pytest.raises(PlanError, match="no GPU"):
        plan_pools({"CPU": 8.0}, ExtractConfig(num_gpus=0.5), FACENET)


def test_gpu_pools_fit_the_gpus():
    plan = plan_pools({"CPU": 16.0, "GPU": 1.0}, ExtractConfig(num_gpus=0.25), EmbedConfig(embedder="facenet", num_gpus=0.5))
    gpus = plan.extract.max_size * 0.25 + plan.embed.max_size * 0.5
    assert gpus <= 1.0 and plan.extract.max_size >= 1


def test_too_few_cpus_is_refused():
    with pytest.raises(PlanError, match="CPUs"):
        plan_pools({"CPU": 1.0}, ExtractConfig(), FACENET)


def _config(name):
    from pathlib import Path

    from fakeface_ray.config import load_config

    return load_config([Path(__file__).parents[1] / "configs" / name])


def _facenet_on_gpus(embed):
    """gpu.yaml's embed section with the overrides its header gives for FaceNet on GPUs."""
    import dataclasses

    return dataclasses.replace(embed, embedder="facenet", num_gpus=0.25, batch_size=128)


def test_one_gpu_machine_shares_the_gpu_by_fractions():
    config = _config("gpu.yaml")
    plan = plan_pools({"CPU": 16.0, "GPU": 1.0}, config.extract, _resolved(config.embed, "forensic"))
    assert (plan.extract.num_gpus, plan.embed.num_gpus) == (0.25, 0.0)
    # MTCNN's actors fill the GPU by fractions; the CPUs left go to the numpy embedder.
    assert plan.extract.max_size * plan.extract.num_gpus == 1.0
    assert plan.embed.max_size > plan.extract.max_size
    assert _used(plan) + 2 * READ_TASK_CPUS <= 16.0
    plan = plan_pools({"CPU": 16.0, "GPU": 1.0}, config.extract, _facenet_on_gpus(config.embed))
    gpus = plan.extract.max_size * plan.extract.num_gpus + plan.embed.max_size * plan.embed.num_gpus
    assert plan.extract.num_gpus == 0.25 and plan.embed.num_gpus == 0.25
    assert plan.extract.max_size >= 1 and plan.embed.max_size >= 1 and gpus <= 1.0
    assert _used(plan) + 2 * READ_TASK_CPUS <= 16.0
    assert (plan.extract.batch_size, plan.embed.batch_size) == (32, 128)


def test_four_nodes_of_32_cpus_and_8_gpus_scale_the_pools():
    config = _config("gpu.yaml")
    plan = plan_pools({"CPU": 128.0, "GPU": 32.0}, config.extract, _facenet_on_gpus(config.embed))
    assert plan.extract.min_size == 1 and plan.extract.max_size >= 64
    gpus = plan.extract.max_size * plan.extract.num_gpus + plan.embed.max_size * plan.embed.num_gpus
    assert gpus <= 32.0 and _used(plan) + 2 * READ_TASK_CPUS <= 128.0
    cpu_only = _config("cluster.yaml")
    plan = plan_pools({"CPU": 128.0}, cpu_only.extract, _resolved(cpu_only.embed))
    assert plan.extract.max_size >= 40 and plan.embed.max_size >= 20


def test_gpu_config_on_a_cpu_cluster_is_refused():
    config = _config("gpu.yaml")
    with pytest.raises(PlanError, match="no GPU"):
        plan_pools({"CPU": 2.0}, config.extract, _resolved(config.embed))


def test_read_tasks_hold_files_per_block_until_the_cap_then_grow():
    read = ReadConfig(files_per_block=16, max_read_tasks=1024)
    assert [read_tasks(n, read) for n in (0, 1, 16, 17, 16 * 1024)] == [1, 1, 1, 2, 1024]
    assert read_tasks(10**6, read) == 1024  # about 977 files a task
    with pytest.raises(ConfigError, match="read.max_read_tasks must be positive"):
        ReadConfig(max_read_tasks=0)
