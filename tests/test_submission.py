import pytest

from fakeface_ray.cluster import jobs as submission
from fakeface_ray.cluster.jobs import SubmitError, load_runtime_env


class SlowHead:
    """A Jobs API whose agent needs two tries before it accepts a job."""

    def __init__(self, failures):
        self.failures = failures
        self.calls = 0

    def submit_job(self, entrypoint, runtime_env):
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("Request failed with status code 500: No available agent to submit job, please try again later.")
        return "raysubmit_123"


def test_submission_waits_for_a_starting_head(monkeypatch):
    monkeypatch.setattr(submission.time, "sleep", lambda s: None)
    head = SlowHead(failures=2)
    assert submission._submit_when_ready(head, "python -m fakeface_ray.cli demo", {}) == "raysubmit_123"
    assert head.calls == 3


def test_other_errors_are_not_retried(monkeypatch):
    def no_waiting(seconds):
        raise AssertionError("waited to retry an error that is not the agent's")

    monkeypatch.setattr(submission.time, "sleep", no_waiting)

    class Broken:
        calls = 0

        def submit_job(self, **kwargs):
            self.calls += 1
            raise RuntimeError("Request failed with status code 400: bad runtime env")

    broken = Broken()
    with pytest.raises(RuntimeError, match="bad runtime env"):
        submission._submit_when_ready(broken, "x", {})
    assert broken.calls == 1


def test_runtime_env_gets_the_working_dir(tmp_path):
    from pathlib import Path

    env = load_runtime_env(Path(__file__).parents[1] / "jobs" / "runtime_env.yaml", tmp_path)
    assert env["working_dir"] == str(tmp_path)
    assert any(p.startswith("tensorflow-cpu") for p in env["pip"]["packages"])
    with pytest.raises(SubmitError, match="not found"):
        load_runtime_env(tmp_path / "none.yaml", tmp_path)


def test_runtime_env_pins_what_setup_cfg_pins():
    import configparser
    from pathlib import Path

    root = Path(__file__).parents[1]
    setup = configparser.ConfigParser()
    setup.read(root / "setup.cfg")
    required = {line.strip() for line in setup["options"]["install_requires"].splitlines()
                if line.strip() and not line.strip().startswith("#")}
    packages = set(load_runtime_env(root / "jobs" / "runtime_env.yaml", root)["pip"]["packages"])
    assert packages - required == {setup["options.extras_require"]["cpu"].strip()}
    assert required <= packages


def test_a_submitted_job_names_its_dashboard_page_and_how_to_follow_it():
    lines = submission.follow_lines("http://head:8265/", "raysubmit_123")
    assert lines[0] == "[fakeface] submitted job raysubmit_123 to http://head:8265/"
    assert lines[1] == "[fakeface] dashboard: http://head:8265/#/jobs/raysubmit_123"
    assert lines[2] == "[fakeface] follow it: ray job logs --address http://head:8265/ --follow raysubmit_123"
    assert submission.follow_lines("head:8265", "j")[1] == "[fakeface] dashboard: http://head:8265/#/jobs/j"


def test_the_submitted_commands_out_is_found_in_either_spelling():
    from fakeface_ray.cli import _out_of

    assert _out_of(["run", "--infile", "s3://in", "--out", "s3://runs/x"]) == "s3://runs/x"
    assert _out_of(["run", "--out=s3://runs/y", "--testsplit", "0.2"]) == "s3://runs/y"
    assert _out_of(["run", "--infile", "in"]) is None and _out_of(["run", "--out"]) is None
