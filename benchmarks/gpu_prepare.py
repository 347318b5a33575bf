"""Prepare what issue 16's GPU run (``benchmarks/gpu_16.sh``) needs on a lent GPU machine, which
reaches nothing and receives at most 64 MiB per call, the repository (about 25 MB) included:

    python benchmarks/gpu_prepare.py wheels   # .whl/: packages missing on the GPU image
    python benchmarks/gpu_prepare.py parts    # .gpu/part-N.tar: those wheels and data/cache

``wheels``: the notebooks' packages and everything they need, at the versions installed here,
less what the GPU image already holds (:data:`ON_THE_GPU_IMAGE`, its package list of
2026-11-17), as Python 3.12 manylinux wheels (sdist-only ones are built here). ``parts``: those
wheels, the embedded data in ``data/cache`` (fetched with ``make data``) and the stand-ins'
checkpoints trained here (so that the GPU run compares inference, not training), packed
largest first into as few tar files as fit what a call may carry beside the repository
(:func:`part_budget`): about 160 MB, gzipped, in 5 parts. Both folders are ignored by git
(``.gitignore``). Each call of the device tool carries one part (``carry``) and runs
``bash benchmarks/gpu_16.sh unpack``, back to back (a warm machine goes back after 30 s idle and
takes what was unpacked with it); the last part travels with ``gpu_16.sh bench``. Prints the
parts and their sizes.
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
#: What one call of the device tool may carry in all (its working tree and carried paths).
CALL_BYTES = 64 * 2**20
#: Room left in each call for files the repository gains after the parts are made.
MARGIN_BYTES = 2_000_000
#: A file's cost in a gzipped part beyond its own bytes (its 512-byte tar header and padding,
#: mostly zeros, compress to about this; the files themselves -- wheels, JPEG and PNG -- do not).
MEMBER_BYTES = 128
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
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.whl"):  # two versions of a package would stop the whole install there
        stale.unlink()
    platform = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    for requirement in closure():
        binary = ["download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
        downloaded = pip(*binary, "--implementation", "cp", *platform, "-d", str(folder), requirement)
        if not downloaded and not pip("wheel", "--no-deps", "-w", str(folder), requirement):  # an sdist
            raise SystemExit(f"no Python 3.12 wheel of {requirement}")
    found = sorted(folder.glob("*.whl"))
    print(f"{folder.name}: {len(found)} wheels, {sum(w.stat().st_size for w in found) / 1e6:.1f} MB")


def part_budget() -> int:
    """Bytes a part may hold: what one call carries, less the files that travel with every call
    (tracked, and untracked but not ignored) and :data:`MARGIN_BYTES`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = [ROOT / name.decode() for name in listed if name]
    return CALL_BYTES - sum(path.stat().st_size for path in paths if path.is_file()) - MARGIN_BYTES


def parts(
    folder: Path = ROOT / ".gpu", sources: dict[str, Path] | None = None, part_bytes: int | None = None
) -> list[Path]:
    """Pack the files under each of ``sources`` (``{name in the tar: folder here}``; default the
    wheels in ``.whl`` and ``data/cache``) into gzipped tars ``folder/part-N.tar``, largest file
    first, each into the first part with room (first-fit decreasing), at most ``part_bytes`` each
    (default :func:`part_budget`; a larger file gets a part of its own). Each part also holds an
    empty ``.gpu/unpacked/part-N-of-M``, by which ``gpu_16.sh`` knows that all were unpacked. A
    written part larger than ``part_bytes`` stops with its name and size. Removes an earlier
    packing's parts. Returns the parts."""
    sources = sources or {".whl": ROOT / ".whl", "data/cache": ROOT / "data" / "cache"}
    part_bytes = part_budget() if part_bytes is None else part_bytes
    folder.mkdir(exist_ok=True)
    for stale in [*folder.glob("part-*.tar"), *folder.glob("data-*.tar")]:
        stale.unlink()
    files = [
        (path.stat().st_size + MEMBER_BYTES, f"{name}/{path.relative_to(source).as_posix()}", path)
        for name, source in sources.items()
        for path in source.rglob("*")
        if path.is_file()
    ]
    bins: list[list] = []
    filled: list[int] = []  # bytes in each part so far
    for size, arcname, path in sorted(files, key=lambda f: (-f[0], f[1])):
        home = next((i for i, used in enumerate(filled) if used + size <= part_bytes), len(bins))
        if home == len(bins):
            bins.append([])
            filled.append(0)
        bins[home].append((size, arcname, path))
        filled[home] += size
    written = []
    for number, members in enumerate(bins, 1):
        target = folder / f"part-{number}.tar"
        with tarfile.open(target, "w:gz", compresslevel=6) as tar:
            for _, arcname, path in sorted(members, key=lambda f: f[1]):
                tar.add(path, arcname=arcname)
            tar.addfile(tarfile.TarInfo(f".gpu/unpacked/part-{number}-of-{len(bins)}"))
        size = target.stat().st_size
        print(f"{target.name}: {len(members)} files, {size / 1e6:.1f} MB")
        if size > part_bytes and len(members) > 1:
            raise SystemExit(f"{target} holds {size:,} bytes, more than a call carries ({part_bytes:,})")
        written.append(target)
    return written


if __name__ == "__main__":
    what = sys.argv[1:] or ["wheels", "parts"]
    if "wheels" in what:
        wheels()
    if "parts" in what:
        parts()
