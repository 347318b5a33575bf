"""Every command that README.md and book/reproduce.md print runs as printed.

The commands are read from the documents' fenced code blocks in the languages ``bash``, ``sh``,
``shell``, ``console`` (after its ``$`` prompt) or none (there, only lines that are commands of
the report: a block without a language is also a file tree). Backslash-continued lines are
joined, then split with :func:`shlex.split` (``#`` comments dropped). One test per command
(named ``document:line``) runs every ``papermill`` command and every ``python -m gradcam_core...``
command; ``make ...`` lines are not run (``make test`` runs this file). A line of another kind in
a shell block fails the collection, so a new kind of command is never skipped silently.

Each block runs in a fresh folder laid out like the repository (``notebooks/`` with copies of
the notebooks, an empty ``results/``), from its root, so the printed relative paths
(``results/01_full.ipynb``, ``--cwd notebooks``, ``-p output_dir ../results/...``,
``-p per_image_csv ../results/task1_vgg16.csv``, ``results/04_user_study/study``) resolve as
they do in a clone and a block's commands read what the earlier ones of the block wrote. A block
introduced by a paragraph ending in "Then:" (README: exporting and analysing the survey's
ratings) continues in the folder of the block before it. A command's test runs the commands
before it in its chain first when they have not run yet, so each test also passes on its own.

The only rewrites, each needed to run on a 2-core CPU without internet in a few minutes:

- ``.venv/bin/papermill`` / ``.venv/bin/python``: the ones beside :data:`sys.executable` (the
  virtual environment running the tests);
- size: ``-p NAME VALUE`` appended for the notebook's own size parameters (:data:`SIZES`:
  ``-p n_images 2`` for notebooks 01, 02 and 04); papermill takes the last value of a
  parameter, so it overrides a printed one (``-p n_images 200``). Notebook 04 draws its 2 images
  from all the records of its ``data_source`` that both models classify right, so it also gets
  ``-p data_source`` the small val folder below (instead of classifying all 1,300 embedded
  images, a minute on 2 cores). Notebook 05 has no size parameter: its printed command reads a
  data folder, replaced by a small one (below);
- data folders: ``/data/ILSVRC2012/val`` (the 50,000 official val JPEGs) becomes a folder of the
  first 4 embedded val images under their official names ``ILSVRC2012_val_XXXXXXXX.JPEG`` (227 px
  copies; :func:`gradcam_core.data.load_ilsvrc_val` reads the labels and boxes of official names
  from the embedded ``ilsvrc2012_val_boxes`` and scales the boxes to the stored size);
  ``/data/NIH/images`` (NIH's PNGs) becomes a folder of the first 3 embedded X-rays that have
  radiologist boxes (256 px copies under NIH's names; the notebook reads their findings and boxes
  from the tables inside torchxrayvision, scaled to the stored size);
- models whose weights cannot be downloaded here become embedded stand-ins (:data:`STAND_INS`):
  ``vgg16`` -> ``mobilenet_v1_0.75`` (the more accurate one, VGG-16's role in Task 4),
  ``alexnet`` and ``googlenet`` -> ``squeezenet1_1``, ``chexnet`` -> ``squeezenet1_1-cxr``; in a
  list a stand-in is kept once (``[vgg16, alexnet, googlenet]`` -> ``[mobilenet_v1_0.75,
  squeezenet1_1]``). This applies to ``--model``, to ``-p`` values, to the items of a ``-p`` list
  literal and of a ``-y`` YAML list (re-emitted as JSON, which is YAML);
- ``cuda`` as ``--device`` / ``-p device`` becomes ``cpu`` when torch sees no GPU;
- an absolute output notebook path (``/tmp/04.ipynb``) goes into the block's folder;
- ``study serve ... --port 8000`` serves on a free port (``--port 0``; the server prints the one
  it got). While it serves, three raters rate every stimulus through the survey's HTTP form
  (ratings drawn with a fixed seed), as people would; then it is stopped with SIGINT (Ctrl-C) and
  must exit with status 0. Those ratings are what ``study export`` writes next;
- a command using ``$SLURM_ARRAY_TASK_ID`` (the Slurm script) runs as array task ``0`` only
  (``SLURM_ARRAY_TASK_ID=0`` in its environment; the other 15 would run the same line);
- ``$VAR`` of a ``for`` loop takes the loop's values; a command ending in ``&`` starts in the
  background and the loop's ``wait`` waits for all of them (each must exit with status 0).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from gradcam_core import data

ROOT = Path(__file__).resolve().parent.parent
#: Where the notebooks are copied from (the repository's own).
NOTEBOOK_SOURCE = ROOT
DOCUMENTS = ("README.md", "book/reproduce.md")
BIN = Path(sys.executable).parent
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", ""}
#: Seconds one command may take before its test fails.
TIMEOUT = 600

#: Models without weights here -> the embedded stand-in that runs in their place.
STAND_INS = {
    "vgg16": "mobilenet_v1_0.75",
    "alexnet": "squeezenet1_1",
    "googlenet": "squeezenet1_1",
    "chexnet": "squeezenet1_1-cxr",
}
#: Printed data folders -> the small folder made in their place (see :func:`data_folders`).
ILSVRC_VAL, NIH_IMAGES = "/data/ILSVRC2012/val", "/data/NIH/images"
#: The size parameters appended to a notebook's command (the smallest that exercise the code).
SIZES = {
    "01_localization": {"n_images": 2},
    "02_pointing_game": {"n_images": 2},
    # 04 draws its images from every record of data_source that both models classify right (it
    # classifies all 1,300 embedded ones, a minute on 2 cores): its size is its data folder
    "04_user_study": {"n_images": 2, "data_source": ILSVRC_VAL},
    "05_chest_xray": {},  # no size parameter: its printed command reads a folder, made small
}
GPU = torch.cuda.is_available()

# papermill's options that take a value (two for -p and -r); the others are flags
PAPERMILL_PARAMETERS = {"-p", "--parameters", "-r", "--parameters_raw"}
PAPERMILL_YAML = {"-y", "--parameters_yaml"}
PAPERMILL_VALUED = {
    "-f",
    "--parameters_file",
    "-b",
    "--parameters_base64",
    "--cwd",
    "-k",
    "--kernel",
    "-l",
    "--language",
    "--engine",
    "--log-level",
    "--start-timeout",
    "--start_timeout",
    "--execution-timeout",
    "--stdout-file",
    "--stderr-file",
    "--inject-input-path",
    "--inject-output-path",
}


# ------------------------------------------------------------------------------------ reading


@dataclass
class Block:
    """A fenced code block: ``line`` is the document line of its first content line."""

    document: str
    line: int
    language: str
    lines: list[str]
    intro: str  # the last line of prose before it


@dataclass
class Command:
    """One command line as printed (``text``, joined), split: ``VAR=value`` prefixes in ``env``,
    the command in ``argv``, a trailing ``&`` as ``background``."""

    document: str
    line: int
    text: str
    env: dict
    argv: list[str]
    background: bool = False

    @property
    def kind(self) -> str:
        """``papermill``, ``gradcam_core.<module>``, or ``make``."""
        program = Path(self.argv[0]).name
        if program == "papermill":
            return "papermill"
        module = self.argv[2] if len(self.argv) > 2 and self.argv[1] == "-m" else ""
        if re.fullmatch(r"python3?(\.\d+)?", program) and module.startswith("gradcam_core"):
            return module
        if program == "make":
            return "make"
        raise ValueError(
            f"{self.document}:{self.line}: unrecognised command {self.text!r}; teach tests/test_commands.py "
            "to run it (or to leave it out, saying why)"
        )


@dataclass
class Loop:
    """``for VARIABLE in VALUES; do BODY done[; wait]``."""

    document: str
    line: int
    text: str
    variable: str
    values: list[str]
    body: list[Command] = field(default_factory=list)


def code_blocks(document: str) -> list[Block]:
    """The fenced code blocks of ``document`` (backticks or tildes, any length)."""
    lines = (ROOT / document).read_text().splitlines()
    blocks, prose, i = [], [], 0
    while i < len(lines):
        opening = re.match(r"^\s*(`{3,}|~{3,})\s*([^`\s]*)", lines[i])
        if not opening:
            if lines[i].strip():
                prose.append(lines[i].strip())
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).strip("{}").lower()
        start, i = i + 1, i + 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            i += 1
        blocks.append(Block(document, start + 1, language, lines[start:i], prose[-1] if prose else ""))
        prose, i = [], i + 1
    return blocks


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """``(line number, text)`` of each command line, backslash continuations joined."""
    joined, pending, start = [], None, 0
    for number, text in enumerate(block.lines, block.line):
        if block.language == "console":
            if pending is None and not text.startswith("$ "):
                continue  # output, not a command
            text = text[2:] if pending is None else text
        if pending is None:
            pending, start = "", number
        stripped = text.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        joined.append((start, (pending + text.strip() if pending else text.strip()).strip()))
        pending = None
    if pending is not None:
        joined.append((start, pending.strip()))
    return joined


def split_command(document: str, line: int, text: str, tokens: list[str]) -> Command:
    env = {}
    while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env[name] = value
    background = bool(tokens) and tokens[-1] == "&"
    argv = tokens[:-1] if background else tokens
    return Command(document, line, text, env, argv, background)


def block_steps(block: Block) -> list[Command | Loop]:
    """The commands and loops of ``block``, in order (``make`` lines included)."""
    steps: list[Command | Loop] = []
    loop = None
    for line, text in logical_lines(block):
        where = f"{block.document}:{line}"
        try:
            tokens = shlex.split(text, comments=True)
        except ValueError as err:
            if block.language == "":
                continue  # a file tree, not a command
            raise ValueError(f"{where}: cannot split {text!r}: {err}") from err
        if not tokens:
            continue  # a comment, the shebang, #SBATCH
        if block.language == "":
            command = split_command(block.document, line, text, list(tokens))
            try:
                command.kind  # noqa: B018 - raises for anything but a command of the report
            except (ValueError, IndexError):
                continue
        if tokens[0] == "for":
            if loop is not None or len(tokens) < 5 or tokens[2] != "in" or tokens[-1] != "do":
                raise ValueError(f"{where}: only `for VAR in VALUES; do` loops are understood: {text!r}")
            values = [t.rstrip(";") for t in tokens[3:-1] if t != ";"]
            loop = Loop(block.document, line, text, tokens[1], [v for v in values if v])
            continue
        if tokens[0] in ("done", "done;"):
            if loop is None or [t.strip(";") for t in tokens[1:]] not in ([], ["wait"]):
                raise ValueError(f"{where}: unexpected {text!r}")
            steps.append(loop)
            loop = None
            continue
        command = split_command(block.document, line, text, list(tokens))
        command.kind  # noqa: B018 - raises for a command this file does not know
        if command.background and loop is None:
            raise ValueError(f"{where}: a background command outside a for loop is not understood")
        (loop.body if loop is not None else steps).append(command)
    if loop is not None:
        raise ValueError(f"{block.document}:{loop.line}: a for loop without `done`")
    return steps


def runnable(step: Command | Loop) -> bool:
    commands = step.body if isinstance(step, Loop) else [step]
    return any(c.kind != "make" for c in commands)


@dataclass
class Chain:
    """Blocks that run one after the other in one folder; ``steps`` are the runnable ones."""

    name: str
    steps: list = field(default_factory=list)


def read_chains() -> list[Chain]:
    chains: list[Chain] = []
    for document in DOCUMENTS:
        previous = None
        for block in code_blocks(document):
            if block.language not in SHELL_LANGUAGES:
                continue
            steps = [s for s in block_steps(block) if runnable(s)]
            if previous is not None and block.intro.endswith("Then:"):
                previous.steps.extend(steps)
                continue
            previous = Chain(f"{document}:{block.line}", steps)
            if steps:
                chains.append(previous)
    return chains


CHAINS = read_chains()
STEPS = [(chain, index) for chain in CHAINS for index in range(len(chain.steps))]


def step_id(step: Command | Loop) -> str:
    """``document:line what``: the notebook of a papermill command, the module and subcommand of
    a ``python -m`` one."""
    command = step.body[0] if isinstance(step, Loop) else step
    if command.kind == "papermill":
        what = "papermill " + next((Path(a).stem for a in command.argv if a.endswith(".ipynb")), "")
    else:
        what = " ".join(command.argv[2:4])
    return f"{step.document}:{step.line} {'for-loop ' if isinstance(step, Loop) else ''}{what}"


# ---------------------------------------------------------------------------------- rewriting


@pytest.fixture(scope="session")
def data_folders(tmp_path_factory) -> dict:
    """The small folders that replace the printed data folders."""
    root = tmp_path_factory.mktemp("data")
    val = root / "ILSVRC2012_val"
    val.mkdir()
    for record in data.load_ilsvrc_val(n_images=4):
        shutil.copy(record.path, val / record.name)  # embedded files carry the official names
    nih = root / "NIH_images"
    nih.mkdir()
    for record in [r for r in data.load_nih_cxr() if r.boxes][:3]:
        shutil.copy(record.path, nih / record.name)
    return {ILSVRC_VAL: str(val), NIH_IMAGES: str(nih)}


def rewrite_value(value, folders: dict):
    """A printed value as it runs here: stand-in models, small data folders; lists keep each
    item once."""
    if isinstance(value, list):
        items = [rewrite_value(v, folders) for v in value]
        return [v for i, v in enumerate(items) if v not in items[:i]]
    if isinstance(value, dict):
        return {k: rewrite_value(v, folders) for k, v in value.items()}
    if isinstance(value, str):
        return folders.get(value, STAND_INS.get(value, value))
    return value


def rewrite_papermill(argv: list[str], workspace: Path, folders: dict) -> list[str]:
    out, positional, notebook, i = [str(BIN / "papermill")], [], None, 1
    while i < len(argv):
        token = argv[i]
        if token in PAPERMILL_PARAMETERS:
            name, value = argv[i + 1], argv[i + 2]
            if value.startswith("["):  # a list literal string: rewrite its items, keep the form
                value = json.dumps(rewrite_value(yaml.safe_load(value), folders))
            else:
                value = rewrite_value(value, folders)
            if name == "device" and value == "cuda" and not GPU:
                value = "cpu"
            out += [token, name, value]
            i += 3
        elif token in PAPERMILL_YAML:
            parameters = rewrite_value(yaml.safe_load(argv[i + 1]), folders)
            if parameters.get("device") == "cuda" and not GPU:
                parameters["device"] = "cpu"
            out += [token, json.dumps(parameters)]
            i += 2
        elif token in PAPERMILL_VALUED:
            out += [token, argv[i + 1]]
            i += 2
        elif token.startswith("-"):
            out.append(token)
            i += 1
        else:
            if not positional:
                notebook = Path(token).stem
            elif Path(token).is_absolute():
                token = str(workspace / Path(token).name)
            positional.append(token)
            out.append(token)
            i += 1
    if notebook not in SIZES:
        raise AssertionError(f"no size parameters known for notebook {notebook!r}; add them to SIZES")
    for name, value in SIZES[notebook].items():
        out += ["-p", name, str(rewrite_value(value, folders))]
    return out


def rewrite_module_command(argv: list[str], folders: dict) -> list[str]:
    out = [sys.executable, *argv[1:]]
    for i in range(1, len(out)):
        before = out[i - 1]
        if before == "--model" or out[i] in folders:
            out[i] = rewrite_value(out[i], folders)
        elif before == "--device" and out[i] == "cuda" and not GPU:
            out[i] = "cpu"
        elif before == "--port" and argv[2] == "gradcam_core.study":
            out[i] = "0"
    return out


def expand(argv: list[str], variables: dict) -> list[str]:
    def value(match):
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise AssertionError(f"${name} is not set by the document")
        return str(variables[name])

    return [re.sub(r"\$\{(\w+)\}|\$(\w+)", value, a) for a in argv]


def as_run(command: Command, workspace: Path, folders: dict, variables: dict) -> tuple[list[str], dict]:
    """The argv and environment that ``command`` runs with here."""
    argv = expand(command.argv, variables)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update({name: str(value) for name, value in variables.items()})  # e.g. SLURM_ARRAY_TASK_ID
    env.update({k: expand([v], variables)[0] for k, v in command.env.items()})
    if command.kind == "papermill":
        return rewrite_papermill(argv, workspace, folders), env
    return rewrite_module_command(argv, folders), env


# ------------------------------------------------------------------------------------ running


def failure(command: Command, argv: list[str], returncode, output: str) -> str:
    return (
        f"{command.document}:{command.line} failed (exit status {returncode})\n"
        f"printed: {command.text}\nran:     {shlex.join(argv)}\n--- output (end) ---\n{output[-6000:]}"
    )


def start(command: Command, workspace: Path, folders: dict, variables: dict):
    argv, env = as_run(command, workspace, folders, variables)
    process = subprocess.Popen(
        argv, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return process, argv


def finish(command: Command, process, argv) -> None:
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(failure(command, argv, f"killed after {TIMEOUT} s", output)) from None
    if process.returncode != 0:
        raise AssertionError(failure(command, argv, process.returncode, output))


def rate_like_raters(url: str, study_dir: Path) -> int:
    """Three raters rate every stimulus of ``study_dir`` through the survey's forms at ``url``,
    as a browser does: each with its own cookie jar (the session the start page issues), sending
    back the CSRF token of the page it was shown."""
    total = len(pd.read_csv(study_dir / "stimuli.csv", dtype=str))
    draw = random.Random(0)
    count = 0
    for rater in ("rater-a", "rater-b", "rater-c"):
        browser = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),  # never through a proxy
            urllib.request.HTTPCookieProcessor(),
        )

        def post(path: str, fields: dict, shown: str, browser=browser) -> str:
            token = re.search(r'name="csrf_token" value="([^"]*)"', shown).group(1)
            form = urllib.parse.urlencode(fields | {"csrf_token": token}).encode()
            with browser.open(f"{url}{path}", data=form, timeout=30) as page:
                assert page.status == 200  # after the redirect: the next stimulus or the thank-you page
                return page.read().decode()

        with browser.open(url, timeout=30) as page:
            shown = page.read().decode()
            assert page.status == 200 and "Trust study" in shown
        shown = post("start", {"rater": rater}, shown)
        while (stimulus := re.search(r'name="stimulus" value="([^"]*)"', shown)) is not None:
            shown = post(
                f"rate/{rater}",
                {"stimulus": stimulus.group(1), "rating": draw.choice([-2, -1, 0, 1, 2])},
                shown,
            )
            count += 1
        assert 'id="done"' in shown
    assert count == 3 * total
    return count


def serve_and_rate(command: Command, workspace: Path, folders: dict) -> None:
    """``study serve`` as printed (on a free port), rated by three raters, stopped with SIGINT."""
    process, argv = start(command, workspace, folders, {})
    lines: queue.Queue = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    output, port, deadline = [], None, time.monotonic() + 120
    try:
        while port is None:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            if line is None:
                raise AssertionError(failure(command, argv, process.wait(), "".join(output)))
            output.append(line)
            found = re.search(r"http://[^/\s]+:(\d+)/", line)
            port = int(found.group(1)) if found and line.startswith("serving") else None
        study_dir = workspace / argv[argv.index("serve") + 1]
        assert rate_like_raters(f"http://127.0.0.1:{port}/", study_dir) > 0
    except queue.Empty:
        raise AssertionError(failure(command, argv, "no 'serving' line in 120 s", "".join(output))) from None
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(queue.Empty):
        while (line := lines.get(timeout=10)) is not None:
            output.append(line)
    if process.returncode != 0:
        raise AssertionError(failure(command, argv, process.returncode, "".join(output)))


def run_step(step: Command | Loop, workspace: Path, folders: dict) -> None:
    if isinstance(step, Loop):
        running = []
        for value in step.values:
            for command in step.body:
                process, argv = start(command, workspace, folders, {step.variable: value})
                if command.background:
                    running.append((command, process, argv))
                else:
                    finish(command, process, argv)
        for command, process, argv in running:  # `done; wait` (also without wait: nothing is left running)
            finish(command, process, argv)
        return
    if step.kind == "gradcam_core.study" and "serve" in step.argv:
        serve_and_rate(step, workspace, folders)
        return
    slurm = any("SLURM_ARRAY_TASK_ID" in a for a in step.argv)
    process, argv = start(step, workspace, folders, {"SLURM_ARRAY_TASK_ID": 0} if slurm else {})
    finish(step, process, argv)


def make_workspace(root: Path, chain: Chain) -> Path:
    """A folder laid out like the repository for ``chain``: copies of the notebooks it runs."""
    (root / "notebooks").mkdir(parents=True)
    (root / "results").mkdir()
    for step in chain.steps:
        for command in step.body if isinstance(step, Loop) else [step]:
            for token in command.argv:
                source = NOTEBOOK_SOURCE / token
                if token.startswith("notebooks/") and token.endswith(".ipynb") and source.is_file():
                    shutil.copy(source, root / token)
    return root


@pytest.fixture(scope="session")
def chain_state():
    """Per chain: its folder and the outcome of each step that has run (True, or the error)."""
    return {id(chain): {"workspace": None, "done": {}} for chain in CHAINS}


def test_every_document_prints_commands_this_file_runs():
    kinds = {}
    for chain in CHAINS:
        for step in chain.steps:
            for command in step.body if isinstance(step, Loop) else [step]:
                kinds.setdefault(command.document, set()).add(command.kind)
    assert {"papermill", "gradcam_core.runner", "gradcam_core.study"} <= kinds["README.md"]
    assert "papermill" in kinds["book/reproduce.md"]


@pytest.mark.parametrize("chain, index", STEPS, ids=[step_id(c.steps[i]) for c, i in STEPS])
def test_printed_command_runs(chain, index, chain_state, data_folders, tmp_path_factory):
    state = chain_state[id(chain)]
    if state["workspace"] is None:
        state["workspace"] = make_workspace(tmp_path_factory.mktemp("workspace"), chain)
    for earlier in range(index):  # what this command reads, written by the ones before it
        if earlier not in state["done"]:
            try:
                run_step(chain.steps[earlier], state["workspace"], data_folders)
                state["done"][earlier] = True
            except Exception as err:  # recorded, and reported as this test's failure
                state["done"][earlier] = err
        if state["done"][earlier] is not True:
            pytest.fail(
                f"an earlier command of the block failed: {step_id(chain.steps[earlier])}\n"
                f"{state['done'][earlier]}"
            )
    try:
        run_step(chain.steps[index], state["workspace"], data_folders)
        state["done"][index] = True
    except Exception as err:
        state["done"][index] = err
        raise
