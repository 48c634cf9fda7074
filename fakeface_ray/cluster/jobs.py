"""Submit a fakeface command to a Ray cluster as a Ray Job, stream its logs, report its outcome."""

from __future__ import annotations

import asyncio
import shlex
import time
from pathlib import Path
from typing import Callable

import yaml

from ..errors import UserError

ENTRYPOINT = "python -m fakeface_ray.cli"


class SubmitError(UserError):
    """The job could not be submitted (address, runtime env file)."""


def load_runtime_env(path: str | Path, working_dir: str | Path) -> dict:
    """The runtime env from a YAML file, with `working_dir` set."""
    path = Path(path)
    if not path.is_file():
        raise SubmitError(f"runtime env file not found: {path}")
    env = yaml.safe_load(path.read_text()) or {}
    if not isinstance(env, dict):
        raise SubmitError(f"{path}: expected a mapping")
    return {**env, "working_dir": str(working_dir)}


def _submit_when_ready(client, entrypoint: str, runtime_env: dict, patience_s: float = 90.0) -> str:
    """Submit, waiting while a just-started head has no job agent yet (Ray answers 500 then)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def follow_lines(address: str, job_id: str) -> list[str]:
    """What to tell a person about a submitted job: its id, its dashboard page, how to follow its logs."""
    # The Jobs API is served by the dashboard: the same address, with the job's page under #/jobs/.
    dashboard = address if "://" in address else f"http://{address}"
    return [f"[fakeface] submitted job {job_id} to {address}",
            f"[fakeface] dashboard: {dashboard.rstrip('/')}/#/jobs/{job_id}",
            f"[fakeface] follow it: ray job logs --address {shlex.quote(address)} --follow {job_id}"]


def submit(address: str, args: list[str], runtime_env: dict, wait: bool = True,
           echo: Callable[[str], None] = print) -> tuple[str, str]:
    """Submit `fakeface ARGS` and, with `wait`, stream its logs until it ends.

    Returns (job id, final status); without `wait` the status is the one at submission.
    """
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SubmitError(f"cannot reach the Ray Jobs API at {address}: {exc}") from None
    job_id = _submit_when_ready(client, f"{ENTRYPOINT} {shlex.join(args)}", runtime_env)
    for line in follow_lines(address, job_id):
        echo(line)
    if not wait:
        return job_id, client.get_job_status(job_id).value

    async def stream() -> None:
        async for chunk in client.tail_job_logs(job_id):
            echo(chunk.rstrip("\n"))

    asyncio.run(stream())
    status = client.get_job_status(job_id)
    while not status.is_terminal():  # logs can end a moment before the status is final
        time.sleep(0.5)
        status = client.get_job_status(job_id)
    return job_id, status.value
