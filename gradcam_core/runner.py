"""Long runs that survive being killed and split across processes, GPUs or a Slurm array.

A task run (Task 1 localisation, Task 2 pointing game, Task 3 occlusion correlation) over the
records is split into ``num_shards`` interleaved shards (record ``i`` goes to shard
``i % num_shards``); each shard works through its records in chunks of ``chunk_size`` and writes
every finished chunk atomically as ``<out>/shard-SSSS-of-NNNN/chunk-CCCCCC.csv`` (plus the paths
of the images it had to skip). A run killed at any point and started again with the same
arguments skips the chunks that exist and ends with the same files as an uninterrupted run.
:func:`merge` joins the shards into one table in the original record order, equal to the table
of an unsharded run::

    python -m gradcam_core.runner run localization --model vgg16 --data-source /data/val \\
        --out results/task1_vgg16 --shard-index $SLURM_ARRAY_TASK_ID --num-shards 8 --device cuda
    python -m gradcam_core.runner merge results/task1_vgg16 --out results/01_full/per_image.csv

The merged CSV is what the Task 1 / Task 2 / Task 3 notebooks read with their ``per_image_csv``
parameter.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from . import cli, data
from .models import DeviceError, UnknownLayerError, UnknownModelError, load_model
from .results import write_table, write_text
from .tasks import localization, occlusion, pointing
from .tasks.common import PRECISIONS

TASKS = {
    "localization": localization.run_localization,
    "pointing": pointing.run_pointing_game,
    "occlusion": occlusion.run_occlusion_correlation,
}


class ShardError(ValueError):
    """Shards that cannot be run or merged as asked, naming the folder."""


@dataclass
class ShardRun:
    """What one :func:`run_shard` call did."""

    folder: Path
    chunks_total: int
    chunks_done_before: int
    chunks_run: int
    skipped: list[str]


def shard_positions(n_records: int, shard_index: int, num_shards: int) -> list[int]:
    """Positions of the records that shard ``shard_index`` of ``num_shards`` works on."""
    if not isinstance(num_shards, int) or isinstance(num_shards, bool) or num_shards < 1:
        raise ShardError(f"num_shards must be an integer >= 1, got {num_shards!r}")
    if not isinstance(shard_index, int) or isinstance(shard_index, bool) or not 0 <= shard_index < num_shards:
        raise ShardError(f"shard_index must be an integer in 0..{num_shards - 1}, got {shard_index!r}")
    return list(range(shard_index, n_records, num_shards))


def shard_folder(out_dir: str | Path, shard_index: int, num_shards: int) -> Path:
    return Path(out_dir) / f"shard-{shard_index:04d}-of-{num_shards:04d}"


def _plan(
    task: str, model_name: str, records, shard_index: int, num_shards: int, chunk_size: int, options: dict
) -> dict:
    names = "\n".join(Path(str(r.path)).name for r in records)
    return {
        "task": task,
        "model": model_name,
        "records": len(records),
        "records_sha256": hashlib.sha256(names.encode()).hexdigest(),
        "shard_index": shard_index,
        "num_shards": num_shards,
        "chunk_size": chunk_size,
        "options": options,
    }


def _chunk_options(chunk: list[int], options: dict) -> dict:
    """A chunk's options. Localisation's ``sweep_images`` counts records of the whole run, by
    position (the first N records, however the run is sharded): within a chunk (ascending
    positions) those are its first images, so the chunk sweeps that many, or none -- then only
    ``headline_threshold`` is boxed (:func:`gradcam_core.tasks.localization.run_localization`)."""
    if options.get("sweep_images") is None:
        return options
    swept = sum(position < options["sweep_images"] for position in chunk)
    if swept:
        return options | {"sweep_images": swept}
    headline = options.get("headline_threshold", localization.PAPER_THRESHOLD)
    return options | {"sweep_images": None, "thresholds": (headline,)}


def run_shard(
    task: str,
    model,
    records,
    out_dir: str | Path,
    *,
    shard_index: int = 0,
    num_shards: int = 1,
    chunk_size: int = 256,
    progress: bool = True,
    **options,
) -> ShardRun:
    """Run ``task`` (a key of :data:`TASKS`) on shard ``shard_index`` of ``records``, chunk by
    chunk, skipping chunks already written (resume). ``options`` go to the task function and are
    recorded; resuming with other options, records or chunk size is refused."""
    if task not in TASKS:
        raise ShardError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ShardError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    headline = options.get("headline_threshold", localization.PAPER_THRESHOLD)
    if options.get("sweep_images") is not None and headline not in options.get("thresholds", (headline,)):
        raise ShardError(
            f"sweep_images needs the headline threshold {headline} among the thresholds "
            f"{list(options['thresholds'])}"
        )
    if (
        task == "localization"
        and set(localization.IMAGE_SPACE_METHODS)
        & set(options.get("methods", localization.METHODS_AND_BASELINES))
        and options.get("image_space_images") is not None
    ):
        raise ShardError(
            "image_space_images limits the first images of one run; in a sharded run pass "
            "image_space_images=None or leave the image-space methods "
            f"({', '.join(localization.IMAGE_SPACE_METHODS)}) out of methods"
        )
    positions = shard_positions(len(records), shard_index, num_shards)
    folder = shard_folder(out_dir, shard_index, num_shards)
    folder.mkdir(parents=True, exist_ok=True)
    plan = _plan(
        task, model.name, records, shard_index, num_shards, chunk_size, json.loads(json.dumps(options))
    )
    plan_file = folder / "plan.json"
    if plan_file.is_file():
        previous = json.loads(plan_file.read_text())
        if previous != plan:
            changed = sorted(k for k in plan if plan[k] != previous.get(k))
            raise ShardError(
                f"{folder} holds results of a different run (differs in: {', '.join(changed)}); "
                f"use another output folder or delete it"
            )
    else:
        write_text(json.dumps(plan, indent=2, sort_keys=True), plan_file)
    chunks = [positions[i : i + chunk_size] for i in range(0, len(positions), chunk_size)]
    done_before = sum((folder / f"chunk-{k:06d}.csv").is_file() for k in range(len(chunks)))
    ran, skipped = 0, []
    for k, chunk in enumerate(
        tqdm(
            chunks,
            desc=f"{task} {model.name} shard {shard_index}/{num_shards}",
            disable=not progress,
            unit="chunk",
        )
    ):
        chunk_file = folder / f"chunk-{k:06d}.csv"
        if chunk_file.is_file():
            continue
        run = TASKS[task](
            model, [records[p] for p in chunk], progress=False, **_chunk_options(chunk, options)
        )
        by_name = {Path(str(records[p].path)).name: p for p in chunk}
        table = run.table.copy()
        if len(table):
            table.insert(0, "position", table["image"].map(by_name).astype(int))
        bad = pd.DataFrame({"position": [by_name[Path(s).name] for s in run.skipped], "path": run.skipped})
        write_table(bad, folder / f"chunk-{k:06d}.skipped.csv")
        write_table(table, chunk_file)  # written last: its presence marks the chunk done
        skipped += run.skipped
        ran += 1
    return ShardRun(folder, len(chunks), done_before, ran, skipped)


def merge(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All shards under ``out_dir`` as one per-image table in record order (the table of an
    unsharded run) and the table of skipped images. Refuses missing or unfinished shards."""
    out_dir = Path(out_dir)
    folders = sorted(out_dir.glob("shard-*-of-*"))
    if not folders:
        raise ShardError(f"{out_dir}: no shard folders (shard-SSSS-of-NNNN)")
    plans = [json.loads((f / "plan.json").read_text()) for f in folders]
    num_shards = {p["num_shards"] for p in plans}
    if len(num_shards) != 1:
        raise ShardError(f"{out_dir}: shards of different splits {sorted(num_shards)}")
    n = num_shards.pop()
    common = {k: plans[0][k] for k in ("task", "model", "records", "records_sha256", "options")}
    for plan, folder in zip(plans, folders):
        if {k: plan[k] for k in common} != common:
            raise ShardError(f"{folder}: made by a different run than {folders[0]}")
    missing = sorted(set(range(n)) - {p["shard_index"] for p in plans})
    if missing:
        raise ShardError(f"{out_dir}: shard(s) {missing} of {n} missing")
    tables, skipped = [], []
    for plan, folder in zip(plans, folders):
        positions = shard_positions(plan["records"], plan["shard_index"], n)
        expected = (len(positions) + plan["chunk_size"] - 1) // plan["chunk_size"]
        files = sorted(folder.glob("chunk-*[0-9].csv"))
        if len(files) != expected:
            raise ShardError(
                f"{folder}: {len(files)} of {expected} chunks done; run that shard again to finish it"
            )
        for file in files:
            tables.append(pd.read_csv(file))
            skipped.append(pd.read_csv(file.with_name(file.stem + ".skipped.csv")))
    table = pd.concat(tables, ignore_index=True).sort_values("position", kind="mergesort")
    bad = pd.concat(skipped, ignore_index=True).sort_values("position", kind="mergesort")
    return table.drop(columns="position").reset_index(drop=True), bad.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser, commands = cli.command_parser("gradcam_core.runner", __doc__)
    run = commands.add_parser("run", help="run one shard of a task (resumes where it stopped)")
    run.add_argument("task", choices=sorted(TASKS))
    run.add_argument("--model", required=True)
    run.add_argument("--weights-path", default=None)
    run.add_argument(
        "--data-source", default="embedded", help="'embedded' or a folder of ILSVRC2012_val_*.JPEG"
    )
    run.add_argument("--n-images", type=cli.positive_int, default=None)
    run.add_argument("--out", required=True, type=cli.output_path)
    run.add_argument("--shard-index", type=cli.non_negative_int, default=0)
    run.add_argument("--num-shards", type=cli.positive_int, default=1)
    run.add_argument("--chunk-size", type=cli.positive_int, default=1024)
    run.add_argument("--batch-size", type=cli.positive_int, default=64)
    run.add_argument("--num-workers", type=cli.non_negative_int, default=0)
    run.add_argument(
        "--box-workers", type=cli.non_negative_int, default=0, help="localisation: processes extracting boxes"
    )
    run.add_argument(
        "--boxes-on-device",
        action="store_true",
        help="localisation: boxes made on the model's device (kornia's connected components; for a GPU)",
    )
    run.add_argument("--device", default="auto")
    run.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    run.add_argument(
        "--thresholds",
        type=cli.comma_floats(0.0, 1.0),
        default="0.05,0.1,0.15,0.2,0.3,0.4,0.5",
        help="localisation: comma-separated binarisation thresholds (Task 1's sweep)",
    )
    run.add_argument(
        "--sweep-images",
        type=cli.positive_int,
        default=None,
        help="localisation: sweep the thresholds on the first N records of the run only, the rest at 0.15",
    )
    merge_cmd = commands.add_parser("merge", help="join finished shards into one per-image CSV")
    merge_cmd.add_argument("out_dir")
    merge_cmd.add_argument("--out", required=True, type=cli.output_path, help="merged per-image CSV")
    args = parser.parse_args(argv)
    bad_inputs = (
        ShardError,
        data.DataFileError,
        data.WeightsUnavailableError,
        UnknownModelError,
        UnknownLayerError,
        DeviceError,
    )
    return cli.run(lambda: _command(args), bad_inputs)


def _command(args) -> int:
    if args.command == "merge":
        table, bad = merge(args.out_dir)
        try:
            write_table(table, args.out)
            write_table(bad, Path(args.out).with_name(Path(args.out).stem + "_skipped.csv"))
        except OSError as err:
            raise ShardError(f"{args.out}: cannot write the merged table ({err.strerror or err})") from err
        print(f"{len(table)} rows, {len(bad)} skipped images -> {args.out}")
        return 0
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ShardError(f"{args.out}: cannot create the output folder ({err.strerror or err})") from err
    records = data.load_ilsvrc_val(args.data_source, n_images=args.n_images)
    model = load_model(args.model, weights_path=args.weights_path, device=args.device)
    options = {"batch_size": args.batch_size, "num_workers": args.num_workers}
    if args.task == "localization":
        methods = ["grad-cam", "full-image", "centre-box"] + (["cam"] if model.spec.cam_compatible else [])
        options.update(
            image_space_images=None,
            methods=methods,
            precision=args.precision,
            box_workers=args.box_workers,
            boxes_on_device=args.boxes_on_device,
            thresholds=args.thresholds,
            sweep_images=args.sweep_images,
        )
    elif args.task == "pointing":
        options.update(precision=args.precision)
    result = run_shard(
        args.task,
        model,
        records,
        args.out,
        shard_index=args.shard_index,
        num_shards=args.num_shards,
        chunk_size=args.chunk_size,
        **options,
    )
    print(
        f"{result.folder}: {result.chunks_run} chunks run, {result.chunks_done_before} already done, "
        f"{result.chunks_total} in all; {len(result.skipped)} unreadable images skipped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
