"""Prepare what issue 16's GPU run (``benchmarks/gpu_16.sh``) needs on a lent GPU machine, which
reaches nothing and receives at most 64 MiB per call (the repository, about 25 MB, included):

    python benchmarks/gpu_prepare.py wheels   # .whl/part-N/: packages missing on the GPU image
    python benchmarks/gpu_prepare.py data     # .gpu/data-N.tar: data/cache in parts

``wheels``: the notebooks' packages and everything they need, at the versions installed here,
less what the GPU image already holds (:data:`ON_THE_GPU_IMAGE`, its package list of
2026-11-17), as Python 3.12 manylinux wheels (sdist-only ones are built here), in folders of at
most :data:`PART_BYTES`. ``data``: the embedded data in ``data/cache`` (fetched with
``make data``) and the stand-ins' checkpoints trained here (so that the GPU run compares
inference, not training), as tar files of at most :data:`PART_BYTES`. Both folders are ignored
by git (``.gitignore``); each call of the device tool carries one part (``carry``), the
machine keeps what earlier calls unpacked while it stays warm, and the last call runs
``bash benchmarks/gpu_16.sh``. Prints the parts and their sizes.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PART_BYTES = 34_000_000
#: What the notebooks import beyond the GPU image (gradcam_core itself travels as source).
ROOTS = (
    "papermill",
    "ipykernel",
    "captum",
    "shap",
    "torchray",
    "torchxrayvision",
    "myst-nb",
    "krippendorff",
    "kornia",
)
#: The GPU image's packages (the device tool's KINDS.md, read on 2026-11-17), not carried.
_GPU_IMAGE_PACKAGES = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
    build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
    cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops
    equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio
    h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio interface-meta jax
    jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator
    lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath
    msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
    numpy numpyro nvidia-ml-py onnx onnxruntime opencv-python-headless optax opt-einsum orbax-checkpoint
    packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
    protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
    python-dateutil pytorch-lightning pyyaml regex requests rich safetensors scikit-build-core
    scikit-image scikit-learn scipy seaborn sentencepiece setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard threadpoolctl tifffile timm tokenizers toolz
    torch torchaudio torchdiffeq torchmetrics torchvision tqdm transformers treescope triton typer
    typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
    zipp"""
ON_THE_GPU_IMAGE = {canonicalize_name(name) for name in _GPU_IMAGE_PACKAGES.split()}
PLATFORMS = [
    f"manylinux{tag}_x86_64"
    for tag in ("1", "2014", "_2_17", "_2_24", "_2_26", "_2_27", "_2_28", "_2_31", "_2_34", "_2_35")
]
PYTHON_3_12 = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "extra": "",
}


def closure(roots=ROOTS) -> list[str]:
    """``name==version`` of ``roots`` and what they need on Python 3.12, as installed here, less
    the GPU image's packages."""
    seen, pinned = set(), []

    def walk(name: str) -> None:
        key = canonicalize_name(name)
        if key in seen or key in ON_THE_GPU_IMAGE:
            return
        seen.add(key)
        dist = metadata.distribution(name)
        pinned.append(f"{dist.metadata['Name']}=={dist.version}")
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(PYTHON_3_12):
                walk(requirement.name)

    for root in roots:
        walk(root)
    return pinned


def pip(*args: str) -> bool:
    return subprocess.run([sys.executable, "-m", "pip", *args, "-q"], capture_output=True).returncode == 0


def wheels(folder: Path = ROOT / ".whl") -> None:
    staging = folder / "all"
    staging.mkdir(parents=True, exist_ok=True)
    platform = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    for requirement in closure():
        binary = ["download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
        downloaded = pip(*binary, "--implementation", "cp", *platform, "-d", str(staging), requirement)
        if not downloaded and not pip("wheel", "--no-deps", "-w", str(staging), requirement):  # an sdist
            raise SystemExit(f"no Python 3.12 wheel of {requirement}")
    parts: list[list[Path]] = [[]]
    for wheel in sorted(staging.glob("*.whl"), key=lambda p: -p.stat().st_size):
        part = next(
            (p for p in parts if sum(w.stat().st_size for w in p) + wheel.stat().st_size <= PART_BYTES), None
        )
        if part is None:
            parts.append(part := [])
        part.append(wheel)
    for number, part in enumerate(parts, 1):
        target = folder / f"part-{number}"
        target.mkdir(exist_ok=True)
        megabytes = sum(w.stat().st_size for w in part) / 1e6
        for wheel in part:
            wheel.rename(target / wheel.name)
        print(f"{target.relative_to(ROOT)}: {len(part)} wheels, {megabytes:.1f} MB")
    staging.rmdir()


def data_parts(
    folder: Path = ROOT / ".gpu", cache: Path = ROOT / "data" / "cache", part_bytes=PART_BYTES
) -> None:
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("data-*.tar"):  # an earlier split's parts
        stale.unlink()
    files = sorted(p for p in cache.rglob("*") if p.is_file())
    parts: list[list[Path]] = [[]]
    for file in files:
        if parts[-1] and sum(f.stat().st_size for f in parts[-1]) + file.stat().st_size > part_bytes:
            parts.append([])
        parts[-1].append(file)
    for number, part in enumerate(parts, 1):
        target = folder / f"data-{number}.tar"
        with tarfile.open(target, "w") as tar:
            for file in part:
                tar.add(file, arcname=f"data/cache/{file.relative_to(cache).as_posix()}")
        print(f"{target.name}: {len(part)} files, {target.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    what = sys.argv[1:] or ["wheels", "data"]
    if "wheels" in what:
        wheels()
    if "data" in what:
        data_parts()
