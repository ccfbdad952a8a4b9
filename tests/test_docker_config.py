"""The docker work pool's deployment file and the image it builds, read as Prefect and the Dockerfile's shell
would read them: no Docker engine or server needed."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_the_docker_variant_builds_from_the_repository_dockerfile():
    spec = yaml.safe_load((REPO / "deployments" / "docker.prefect.yaml").read_text())
    build = spec["build"][0]["prefect_docker.deployments.steps.build_docker_image"]
    push = spec["push"][0]["prefect_docker.deployments.steps.push_docker_image"]
    assert (REPO / build["dockerfile"]).is_file() and push["image_name"] == "{{ build-image.image_name }}"
    assert "tag" not in build  # each build gets its own UTC-time tag: a retry runs the image its run started with
    env = spec["definitions"]["work_pools"]["docker"]["job_variables"]["env"]
    assert env["PREFECT_LOCAL_STORAGE_PATH"].startswith("/data/")  # flow results outlive the container
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", "lora-adapter"} <= set(ignored)


def test_the_docker_image_takes_cpu_torch_of_the_locked_version(tmp_path):
    """The Dockerfile's shell, run on the real uv.lock: the GPU-only packages it leaves out and the torch
    and torchvision versions it installs from PyTorch's CPU index (a build needs a Docker engine)."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert dockerfile.count("$(cat .gpu-only)") == 2  # both syncs leave the CUDA packages out
    listing = dockerfile.split("RUN grep", 1)[1].split("> .gpu-only", 1)[0]
    subprocess.run(f"grep{listing.replace(chr(92) + chr(10), ' ')} > {tmp_path}/gpu-only", shell=True, cwd=REPO,
                   check=True)  # fmt: skip
    skipped = (tmp_path / "gpu-only").read_text().split()
    assert {"torch", "torchvision", "triton"} <= set(skipped) and any(p.startswith("nvidia-") for p in skipped)
    version = subprocess.run(
        """awk '/^name = "torch"$/{getline; print $3}' uv.lock | tr -d '"'""", shell=True, cwd=REPO, text=True,
        capture_output=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert version and f'"torch=={version}"' in (REPO / "pyproject.toml").read_text()
    from prefect_docker.deployments.steps import build_docker_image, push_docker_image

    # The steps take the arguments the yaml gives them (an unknown one would fail only at `prefect deploy`).
    spec = yaml.safe_load((REPO / "deployments" / "docker.prefect.yaml").read_text())
    for step, function in ((spec["build"][0], build_docker_image), (spec["push"][0], push_docker_image)):
        (arguments,) = step.values()
        accepted = inspect.signature(function).parameters
        assert set(arguments) - {"id", "requires"} <= set(accepted), set(arguments) - set(accepted)
