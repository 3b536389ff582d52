"""Every command of the ``bash`` blocks of README.md, export/README.md and android_demo/README.md,
and how a test runs it.

:data:`COMMANDS` maps each documented command, exactly as :func:`documented_commands` extracts it,
to a :class:`Run` (how it is run here, with every substitution written out) or a :class:`Skip`
(why it cannot run here). ``tests/test_readme_commands.py`` asserts that the documented commands
and the keys of :data:`COMMANDS` are the same set, so a new or changed command fails until it is
entered here. Sections are still gaining commands (e.g. ``python -m tfderain.beam ...``); to
add one, copy the failing command into :data:`COMMANDS` as the key and give either

- a :class:`Run`: ``file``, a key of :data:`FILES` naming the test file that runs it (each file
  runs on one pytest-xdist worker: keep each under about 4 minutes, or add a file); ``inputs``,
  the files it reads, by the names of :data:`INPUTS` (add a builder there for a new one);
  ``replace``, the textual substitutions (documented text, text run); ``append``, options that
  keep it small; ``presets=True`` if it names a preset; ``check``, assertions on what it wrote;
- or a :class:`Skip` with the reason it cannot run here (GPU, Docker, network, the suite itself).

Each command runs with ``bash -c`` in a fresh folder laid out like a clone of the repository:
``examples/``, ``export/``, ``benchmarks/`` and ``training/`` link to the checkout, ``../shared``
to the shared reference data, and the inputs it names are links to small files prepared once per
test module. The ``tfderain`` console script and ``python`` are the test interpreter's
(``PATH``), importing the checkout's package (``PYTHONPATH``); ``$TFDERAIN_HOME`` is a temporary
folder, and presets come from a mirror folder of ``../shared/weights`` (``$TFDERAIN_MIRROR``,
built by ``benchmarks/_mirror.py``), so nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: The documents whose ``bash`` blocks are extracted.
DOCUMENTS = ("README.md", "export/README.md", "android_demo/README.md")
#: Folders of the checkout a documented command may use, linked into each run's folder.
CHECKOUT = ("examples", "export", "benchmarks", "training", "android_demo")
TIMEOUT = 900

# ------------------------------------------------------------------------------ extraction


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` outside quotes, after a space)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def extract(markdown: str) -> list[str]:
    """The commands of the ```` ```bash ```` blocks of ``markdown``, in order.

    Comment lines and blank lines are dropped, ``\\`` continuations joined with one space, a
    trailing ``# comment`` stripped; a heredoc (``cmd <<'EOF'`` … ``EOF``) is one command, kept
    with its lines.
    """
    commands: list[str] = []
    lines = iter(markdown.splitlines())
    inside = False
    for line in lines:
        stripped = line.strip()
        if not inside:
            inside = stripped == "```bash"
            continue
        if stripped.startswith("```"):
            inside = False
            continue
        if not stripped or stripped.startswith("#"):
            continue
        heredoc = re.search(r"<<-?\s*(['\"]?)(\w+)\1\s*$", stripped)
        if heredoc:
            body = [stripped]
            for more in lines:
                body.append(more)
                if more.strip() == heredoc.group(2):
                    break
            commands.append("\n".join(body))
            continue
        command = _strip_comment(stripped)
        while command.endswith("\\"):
            command = command[:-1].rstrip() + " " + _strip_comment(next(lines).strip())
        commands.append(command)
    return commands


def documented_commands() -> list[str]:
    """Every command of :data:`DOCUMENTS`, in order (a repeated command appears twice)."""
    return [c for doc in DOCUMENTS for c in extract((REPO / doc).read_text(encoding="utf-8"))]


# ----------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Input:
    """A file or folder a command reads: what it is, and how :class:`Inputs` builds it."""

    description: str
    build: Callable[[Inputs, Path], None] | None  # None: an empty folder made fresh per run


def _crop(path: Path, height: int = 96, width: int = 128) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return np.ascontiguousarray(image[:height, :width])


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image), path


def _photo(name: str) -> Callable[[Inputs, Path], None]:
    return lambda inputs, out: _write(out, _crop(inputs.shared / "data/real-rain" / name))


def _photo_folder(names: dict[str, str]) -> Callable[[Inputs, Path], None]:
    def build(inputs: Inputs, out: Path) -> None:
        for target, name in names.items():
            _write(out / target, _crop(inputs.shared / "data/real-rain" / name))

    return build


def _clip(inputs: Inputs, out: Path) -> None:
    frames = _crop(inputs.shared / "data/real-rain/ddn-real-2.jpg", 64 + 4, 96)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 64))
    assert writer.isOpened()
    for shift in range(CLIP_FRAMES):
        writer.write(np.ascontiguousarray(frames[shift : shift + 64]))
    writer.release()


CLIP_FRAMES = 3
#: The pairs of every dataset folder: (rainy, clean) crops of Rain100H-20 pairs 1 and 2.
PAIR_SIZE = (64, 96)


def _rain100h(inputs: Inputs, out: Path) -> None:
    for i in (1, 2):
        for sub in ("input", "target"):
            image = _crop(inputs.shared / "data/Rain100H-20" / sub / f"{i}.png", *PAIR_SIZE)
            _write(out / sub / f"{i}.png", image)


def _rain100l(inputs: Inputs, out: Path) -> None:
    for i in (1, 2):
        src = inputs.shared / "data/Rain100L-3"
        _write(out / "rainy" / f"rain-00{i}.png", _crop(src / f"rainy/rain-00{i}.png", *PAIR_SIZE))
        _write(out / f"norain-00{i}.png", _crop(src / f"norain-00{i}.png", *PAIR_SIZE))


def _predictions(inputs: Inputs, out: Path) -> None:
    """The rainy images themselves as the predictions, so PSNR must equal the input PSNR."""
    dataset = inputs.get("Rain100H")
    out.mkdir(parents=True)
    for path in sorted((dataset / "input").iterdir()):
        shutil.copy(path, out / path.name)


#: PReNet6 trained on Rain100H, as the official release has it.
PRENET_RAIN100H = "../shared/weights/PReNet/logs/Rain100H/PReNet6/net_latest.pth"
#: The golden MPRNet checkpoint (official layout, paper configuration) in place of the release's.
MPRNET_PTH = "../shared/golden/mprnet/weights.pth"


def _converted_prenet(inputs: Inputs, out: Path) -> None:
    from tfderain.convert import convert
    from tfderain.saving import save_model

    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = inputs.shared / PRENET_RAIN100H.removeprefix("../shared/")
    save_model(convert("prenet", checkpoint), out)


def _same_as(name: str) -> Callable[[Inputs, Path], None]:
    def build(inputs: Inputs, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(inputs.get(name), out)

    return build


def _bundled_default(inputs: Inputs, out: Path) -> None:
    from tfderain.api import default_model_path

    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(default_model_path(), out)


def _exported_prenet(inputs: Inputs, out: Path) -> None:
    from tfderain import load_model
    from tfderain.export.savedmodel import export_savedmodel

    export_savedmodel(load_model(inputs.get("prenet_rain100h.keras")), out, version=1)


#: Appended to the Android asset export: one QAT step instead of the recipe's 200 (about two
#: minutes), written in the run's folder instead of the checkout's app.
SHORT_ANDROID = " --qat-steps 1 --out assets_models"
SHORT_ANDROID_NOTE = (
    "one QAT step, written in the run's folder (the app's folder is the checkout's)"
)


def _android_assets(inputs: Inputs, out: Path) -> None:
    command = [sys.executable, str(REPO / "export" / "android_assets.py")]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = SHORT_ANDROID.replace("assets_models", str(out)).split()
    done = subprocess.run(command + args, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]


PAIRS = "2 pairs: 64×96 crops of ../shared/data/Rain100H-20 pairs 1-2 (input/, target/)"
CONVERTED = f"{PRENET_RAIN100H} converted to .keras (tfderain.convert)"

#: Every input a command may read, by the name the command gives it.
INPUTS: dict[str, Input] = {
    "photo.jpg": Input(
        "a 96×128 crop of ../shared/data/real-rain/ddn-real-1.jpg", _photo("ddn-real-1.jpg")
    ),
    "IMG_0042.jpg": Input(
        "a 96×128 crop of ../shared/data/real-rain/ddn-real-3.jpg", _photo("ddn-real-3.jpg")
    ),
    "photos": Input(
        "96×128 crops of ddn-real-1.jpg (as a.png) and ddn-real-2.jpg (as b.jpg)",
        _photo_folder({"a.png": "ddn-real-1.jpg", "b.jpg": "ddn-real-2.jpg"}),
    ),
    "more": Input(
        "a 96×128 crop of ddn-real-3.jpg (as c.jpg)", _photo_folder({"c.jpg": "ddn-real-3.jpg"})
    ),
    "clip.mp4": Input(f"{CLIP_FRAMES} frames of 64×96 (mp4v) cropped from ddn-real-2.jpg", _clip),
    "Rain100H": Input(PAIRS, _rain100h),
    "Rain100L": Input(
        "2 pairs: 64×96 crops of ../shared/data/Rain100L-3 pairs 1-2 (PReNet's rainy/ layout)",
        _rain100l,
    ),
    "data/RainTrainH": Input(PAIRS, _same_as("Rain100H")),
    "data/Rain13K": Input(PAIRS, _same_as("Rain100H")),
    "data/Rain100H": Input(PAIRS, _same_as("Rain100H")),
    "results/Rain100H": Input("the rainy images of Rain100H, as saved predictions", _predictions),
    "prenet_rain100h.keras": Input(CONVERTED, _converted_prenet),
    "prenet.keras": Input(CONVERTED, _same_as("prenet_rain100h.keras")),
    "runs/prenet/model.keras": Input(CONVERTED, _same_as("prenet_rain100h.keras")),
    "runs/default/model.keras": Input("a copy of the bundled default model", _bundled_default),
    "runs/default_finetune/model.keras": Input(
        "a copy of the bundled default model", _bundled_default
    ),
    "tfderain/weights": Input("an empty folder (not the package's)", None),
    "assets_models": Input(
        f"the app's default models, python export/android_assets.py{SHORT_ANDROID}",
        _android_assets,
    ),
    "exported/prenet": Input(
        "prenet_rain100h.keras exported as version 1 (tfderain.export.savedmodel)",
        _exported_prenet,
    ),
}


class Inputs:
    """The inputs of :data:`INPUTS`, each built on first use in ``folder``."""

    def __init__(self, shared: Path, folder: Path):
        self.shared = Path(shared)
        self.folder = Path(folder)
        self._mirror: Path | None = None

    def get(self, name: str) -> Path:
        path = self.folder / name
        if not path.exists():
            INPUTS[name].build(self, path)
        return path

    def mirror(self) -> Path:
        """A ``$TFDERAIN_MIRROR`` folder serving ``../shared/weights``."""
        if self._mirror is None:
            sys.path.insert(0, str(REPO / "benchmarks"))
            try:
                import _mirror
            finally:
                sys.path.remove(str(REPO / "benchmarks"))
            self._mirror = self.folder / "_mirror"
            _mirror.build_mirror(self.shared / "weights", self._mirror)
        return self._mirror


# ------------------------------------------------------------------------------------ table


@dataclass(frozen=True)
class Outcome:
    """What a check sees: the folder the command ran in, and its output."""

    cwd: Path
    stdout: str
    stderr: str
    address: str = ""  # a server's host:port


@dataclass(frozen=True)
class Run:
    """How a documented command is run: ``replace`` (documented text → text run), then
    ``append``; ``inputs`` are prepared in the folder first; ``check`` asserts on the result."""

    file: str
    check: Callable[[Outcome], None]
    inputs: tuple[str, ...] = ()
    replace: tuple[tuple[str, str], ...] = ()
    append: str = ""
    note: str = ""  # why the substitutions, where not obvious
    server: bool = False  # a long-running server: started, checked while it runs, stopped
    presets: bool = False  # names a preset: served by the mirror of ../shared/weights

    def command(self, documented: str) -> str:
        for old, new in self.replace:
            assert old in documented, f"{old!r} is not in {documented!r}"
            documented = documented.replace(old, new)
        return documented + self.append


@dataclass(frozen=True)
class Skip:
    reason: str


# Checks ------------------------------------------------------------------------------------


def _size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} does not decode"
    return image.shape[:2]


def same_size(source: str, output: str) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        assert _size(out.cwd / output) == _size(out.cwd / source)

    return check


def folder_derained(out: Outcome) -> None:
    written = sorted(p.name for p in (out.cwd / "derained").iterdir())
    assert written == ["a.png", "b.jpg", "c.jpg"], written
    for folder, name in (("photos", "a.png"), ("photos", "b.jpg"), ("more", "c.jpg")):
        assert _size(out.cwd / "derained" / name) == _size(out.cwd / folder / name)


def video(output: str) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        capture = cv2.VideoCapture(str(out.cwd / output))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
        assert len(frames) == CLIP_FRAMES
        assert all(f.shape == (64, 96, 3) for f in frames)

    return check


def keras_file(path: str, arch: str, **config) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        from tfderain.saving import read_metadata

        meta = read_metadata(out.cwd / path)
        assert meta["arch"] == arch
        assert {k: meta["config"][k] for k in config} == config

    return check


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def evaluated(out: Outcome) -> None:
    rows = _rows(out.cwd / "scores.csv")
    assert [r["image"] for r in rows] == ["1", "2"], rows
    assert all(float(r["psnr"]) > float(r["input_psnr"]) for r in rows)  # Rain100H weights
    assert "protocol A: 2 images" in out.stdout


def evaluated_table(out: Outcome) -> None:
    rows = _rows(out.cwd / "table.csv")
    models = sorted({r["model"] for r in rows})
    assert len(models) == 2 and models[0].startswith("mprnet") and models[1].startswith("prenet")
    for model in models:
        for data in ("Rain100H", "Rain100L"):
            mine = [r for r in rows if r["model"] == model and r["data"] == data]
            assert len(mine) == 3 and mine[-1]["image"] == "(mean)", mine
    protocols = {r["model"].split()[0]: r["protocol"] for r in rows}
    assert protocols == {"mprnet": "B", "prenet": "A"}
    table = [line for line in out.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2 and "Rain100H" in table[0] and "Rain100L" in table[0]


def scored(out: Outcome) -> None:
    rows = _rows(out.cwd / "scores.csv")
    assert [r["image"] for r in rows] == ["1", "2"], rows
    for row in rows:  # the predictions are the rainy images
        assert float(row["psnr"]) == float(row["input_psnr"])
        assert float(row["ssim"]) == float(row["input_ssim"])
    assert "protocol B: 2 images" in out.stdout


def beam_scored(out: Outcome) -> None:
    """Beam's evaluate: one score row per pair, and the means ``tfderain evaluate`` prints."""
    rows = [
        json.loads(line)
        for line in (out.cwd / "scores/scores.jsonl").read_text().split("\n")
        if line
    ]
    assert len(rows) == 2, rows
    summary = json.loads((out.cwd / "scores/summary.json").read_text())
    assert summary["images"] == 2 and summary["protocol"] == "A"
    assert "protocol A: 2 images" in out.stdout


def presets_listed(out: Outcome) -> None:
    for name in ("prenet:rain100h", "prn_r:rain100l", "mcodenet:rain1200", "restormer:rain13k"):
        assert name in out.stdout


def trained(run: str, arch: str) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        from tfderain.saving import read_metadata

        folder = out.cwd / "runs" / run
        assert read_metadata(folder / "model.keras")["arch"] == arch
        assert json.loads((folder / "state.json").read_text())
        assert len(_rows(folder / "log.csv")) == 1  # one epoch

    return check


def fitted(out: Outcome) -> None:
    from tfderain.saving import read_metadata

    assert read_metadata(out.cwd / "my_model.keras")["arch"] == "rainunet"
    assert len(_rows(out.cwd / "fit_example.csv")) == 1  # one epoch


def copied(run: str) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        from tfderain import load_model

        target = out.cwd / "tfderain/weights/default.keras"
        assert target.read_bytes() == (out.cwd / "runs" / run / "model.keras").read_bytes()
        image = np.zeros((1, 32, 32, 3), np.float32)
        assert load_model(target)(image, training=False)["derained"].shape == (1, 32, 32, 3)

    return check


def fine_tuned(out: Outcome) -> None:
    """The second stage ran from the first stage's weights (its log says it started from them)."""
    trained("default_finetune", "rainunet")(out)
    assert "runs/default/model.keras" in out.stdout + out.stderr


def saved_model(base: str) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        from tfderain._keras import tf

        folder = out.cwd / base / "1"
        assert json.loads((folder / "assets.extra/tfderain.json").read_text())
        loaded = tf.saved_model.load(str(folder))
        assert {"serving_default", "derain_uint8", "derain_image_bytes"} <= set(loaded.signatures)
        image = np.random.default_rng(0).integers(0, 256, (1, 20, 28, 3), dtype=np.uint8)
        derained = loaded.signatures["derain_uint8"](images=tf.constant(image))["derained"]
        assert derained.shape == image.shape and derained.dtype == tf.uint8

    return check


def tflite(path: str, quant: str, dtype: type = np.float32) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        from ai_edge_litert.interpreter import Interpreter

        file = out.cwd / path
        descriptor = json.loads(file.with_suffix(".json").read_text())
        assert descriptor["file"] == file.name and descriptor["quantization"] == quant
        interpreter = Interpreter(model_path=str(file))
        (given,) = interpreter.get_input_details()
        assert given["dtype"] == dtype
        shape = [1, 32, 32, 3] if descriptor["tile"] is None else list(given["shape"])
        if descriptor["tile"] is None:
            interpreter.resize_tensor_input(given["index"], shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], np.zeros(shape, given["dtype"]))
        interpreter.invoke()
        result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        assert list(result.shape) == shape

    return check


def python_block(document: str, heading: str) -> str:
    """The first ```` ```python ```` block after the line ``heading`` of ``document``."""
    text = (REPO / document).read_text(encoding="utf-8")
    after = text[text.index(heading + "\n") :]
    start = after.index("```python\n") + len("```python\n")
    return after[start : after.index("```", start)]


#: The gRPC client of export/README.md, run as written against the test server: the one
#: substitution is the server's address.
GRPC_SNIPPET = ("export/README.md", "### gRPC requests", "localhost:8500")


def served(out: Outcome) -> None:
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(out.address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        meta = get_model_metadata_pb2.GetModelMetadataRequest()
        meta.model_spec.name = "prenet"
        meta.metadata_field.append("signature_def")
        answer = stub.GetModelMetadata(meta, timeout=60)
        assert answer.model_spec.name == "prenet" and answer.model_spec.version.value == 1
    document, heading, address = GRPC_SNIPPET
    snippet = python_block(document, heading)
    assert address in snippet
    client = out.cwd / "grpc_client"
    client.mkdir()
    (client / "examples").symlink_to(REPO / "examples")
    (client / "client.py").write_text(snippet.replace(address, out.address))
    done = subprocess.run(
        [sys.executable, "client.py"], cwd=client, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    image = cv2.imread(str(client / "derained.png"))
    assert image is not None and image.shape == cv2.imread(str(REPO / "examples/rainy.png")).shape


def android_assets(out: Outcome) -> None:
    """The app's default variants, each a ``.tflite`` file with its descriptor beside it."""
    for variant, quantization in (("rainunet_int8", "qat"), ("rainunet_fp16", "fp16")):
        folder = out.cwd / "assets_models" / variant
        descriptor = json.loads((folder / "model_spec.json").read_text())
        assert descriptor["model"] == "rainunet", descriptor["model"]
        assert descriptor["quantization"] == quantization
        assert (folder / descriptor["file"]).stat().st_size > 100_000


def android_scores(out: Outcome) -> None:
    """One table row per variant, scored on all 20 pairs (exit status 0: within --max-loss)."""
    rows = [line for line in out.stdout.splitlines() if line.startswith("| rainunet_")]
    assert sorted(r.split("|")[1].strip() for r in rows) == ["rainunet_fp16", "rainunet_int8"]
    assert all(r.split("|")[6].strip() == "20" for r in rows), rows


def nothing_more(out: Outcome) -> None:
    """The command's own exit status is its check (see its ``append``)."""


# The table ----------------------------------------------------------------------------------

#: Appended to every training command: one epoch of two steps of 2 patches of 32×32.
SHORT_TRAINING = (
    " --set epochs=1 --set steps_per_epoch=2 --set data.batch_size=2 --set data.patch_size=32"
    " --set logging.verbose=2"
)
#: Appended to every QAT export: one calibration-and-fine-tune step of one 32×32 patch.
SHORT_QAT = " --qat-steps 1 --qat-batch-size 1 --qat-patch-size 32 --tile 32"
W = ("$W", PRENET_RAIN100H)
PIP = "done by .ci/run, which installs the checkout with the test extra before running the suite"
TF_SERVING = "needs TensorFlow Serving (Docker) listening on localhost:8501"

REST_CLIENT = """python - <<'EOF'
import base64, json, urllib.request
body = {
    "signature_name": "derain_image_bytes",
    "instances": [{"b64": base64.b64encode(open("examples/rainy.png", "rb").read()).decode()}],
}
request = urllib.request.Request(
    "http://localhost:8501/v1/models/prenet:predict",
    data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json"},
)
answer = json.load(urllib.request.urlopen(request))
prediction = answer["predictions"][0]
if "derained_bytes" in prediction:  # several outputs (density-aware models): keyed by name
    prediction = prediction["derained_bytes"]
open("derained.png", "wb").write(base64.b64decode(prediction["b64"]))
EOF"""

COMMANDS: dict[str, Run | Skip] = {
    # ---------------------------------------------------------------- README.md: Quickstart
    "pip install . && tfderain derain examples/rainy.png -o derained.png": Run(
        "docs",
        same_size("examples/rainy.png", "derained.png"),
        replace=(("pip install . && ", ""),),
        note=f"pip install: {PIP}",
    ),
    "tfderain derain photo.jpg -o out.jpg --model prenet:rain100h": Run(
        "docs", same_size("photo.jpg", "out.jpg"), inputs=("photo.jpg",), presets=True
    ),
    'pip install ".[test]" && python -m pytest -q -n 2 --dist loadfile': Skip(
        "the test suite itself (.ci/run runs it verbatim)"
    ),
    # ------------------------------------------------------- README.md: Official checkpoints
    "tfderain convert --arch prenet logs/Rain100H/PReNet6/net_latest.pth "
    "-o prenet_rain100h.keras": Run(
        "docs",
        keras_file("prenet_rain100h.keras", "prenet", stages=6, channels=32),
        replace=(("logs/Rain100H/PReNet6/net_latest.pth", PRENET_RAIN100H),),
    ),
    "tfderain derain photo.jpg -o out.jpg --weights prenet_rain100h.keras": Run(
        "docs", same_size("photo.jpg", "out.jpg"), inputs=("photo.jpg", "prenet_rain100h.keras")
    ),
    "tfderain presets": Run("docs", presets_listed),
    # ----------------------------------------------------------------- README.md: Deraining
    'tfderain derain photos/ "more/*.jpg" -o derained/ --model prenet --weights prenet.keras': Run(
        "docs", folder_derained, inputs=("photos", "more", "prenet.keras")
    ),
    "tfderain derain IMG_0042.jpg -o IMG_0042_derained.jpg --jpeg-quality 98": Run(
        "docs", same_size("IMG_0042.jpg", "IMG_0042_derained.jpg"), inputs=("IMG_0042.jpg",)
    ),
    "tfderain derain clip.mp4 -o clip_derained.mp4": Run(
        "docs", video("clip_derained.mp4"), inputs=("clip.mp4",)
    ),
    "tfderain derain clip.mp4 -o clip_derained.mkv --video-codec FFV1": Run(
        "docs", video("clip_derained.mkv"), inputs=("clip.mp4",)
    ),
    # ---------------------------------------------------------------- README.md: Evaluation
    "tfderain evaluate --model prenet --weights prenet_rain100h.keras --data Rain100H "
    "--protocol A --csv scores.csv": Run(
        "docs", evaluated, inputs=("prenet_rain100h.keras", "Rain100H")
    ),
    "tfderain evaluate --model prenet --weights PReNet6.pth --model mprnet --weights "
    "model_deraining.pth --data Rain100H --data Rain100L --csv table.csv": Run(
        "docs",
        evaluated_table,
        inputs=("Rain100H", "Rain100L"),
        replace=(("PReNet6.pth", PRENET_RAIN100H), ("model_deraining.pth", MPRNET_PTH)),
    ),
    "tfderain score --pred results/Rain100H --data Rain100H --protocol B --csv scores.csv": Run(
        "docs", scored, inputs=("results/Rain100H", "Rain100H")
    ),
    # ---------------------------------------------------------------- README.md: Apache Beam
    'pip install ".[beam]"': Skip(PIP),
    'python -m tfderain.beam derain "gs://bucket/rain/*.jpg" -o gs://bucket/derained '
    "--runner DataflowRunner ...": Skip(
        "needs Google Cloud Dataflow and a gs:// bucket; the same pipeline runs on the "
        "DirectRunner with two worker processes in tests/test_beam.py"
    ),
    "python -m tfderain.beam evaluate --data Rain100H/ -o scores/ "
    "--weights prenet_rain100h.keras": Run(
        "docs", beam_scored, inputs=("prenet_rain100h.keras", "Rain100H")
    ),
    # ------------------------------------------------------------------ README.md: Training
    "tfderain train --config prenet --set data.source=/data/RainTrainH": Run(
        "train",
        trained("prenet", "prenet"),
        inputs=("data/RainTrainH",),
        replace=(("/data/RainTrainH", "data/RainTrainH"),),
        append=SHORT_TRAINING,
    ),
    "tfderain train --config restormer --set data.source=/data/Rain13K --set "
    "validation.source=/data/Rain100H --precision mixed_bfloat16 --jit --strategy mirrored": Run(
        "train",
        trained("restormer", "restormer"),
        inputs=("data/Rain13K", "data/Rain100H"),
        replace=(("/data/Rain13K", "data/Rain13K"), ("/data/Rain100H", "data/Rain100H")),
        append=SHORT_TRAINING
        + " --set data.progressive=null"
        + " --set 'model.config={dim: 8, num_blocks: [1, 1, 1, 1], num_refinement_blocks: 1}'",
        note="a Restormer of 208 K parameters: the paper's 26 M under XLA take too long on a CPU",
    ),
    "python examples/train_with_fit.py --epochs 2 --steps 20 -o my_model.keras": Run(
        "train", fitted, replace=(("--epochs 2 --steps 20", "--epochs 1 --steps 2"),)
    ),
    'pip install ".[train]"': Skip(PIP),
    "python training/data/fetch_photos.py --licenses permissive": Skip(
        "downloads Debian and PyPI packages (network)"
    ),
    "tfderain train --config default --set epochs=12": Run(
        "train",
        trained("default", "rainunet"),
        append=SHORT_TRAINING + " --set data.clean=skimage",
        note="scikit-image's photos in place of training/data/photos (fetching needs the network)",
    ),
    "tfderain train --config default_finetune": Run(
        "train",
        fine_tuned,
        inputs=("runs/default/model.keras",),
        append=SHORT_TRAINING + " --set data.clean=skimage",
        note="scikit-image's photos in place of training/data/photos (fetching needs the network)",
    ),
    "cp runs/default_finetune/model.keras tfderain/weights/default.keras": Run(
        "train",
        copied("default_finetune"),
        inputs=("runs/default_finetune/model.keras", "tfderain/weights"),
    ),
    # ---------------------------------------------------------------- README.md: Deployment
    "tfderain export savedmodel --weights prenet_rain100h.keras -o serving/prenet --version 1": Run(
        "serving", saved_model("serving/prenet"), inputs=("prenet_rain100h.keras",)
    ),
    "tfderain export tflite --weights prenet_rain100h.keras --quant qat -o prenet_qat.tflite": Run(
        "train",  # a fine-tune: run beside the training commands, which balances the files
        tflite("prenet_qat.tflite", "qat"),
        inputs=("prenet_rain100h.keras",),
        append=SHORT_QAT,
    ),
    # ------------------------------------------------------------------------ export/README.md
    "tfderain export savedmodel --weights runs/prenet/model.keras -o exported/prenet "
    "--version 1": Run(
        "serving", saved_model("exported/prenet"), inputs=("runs/prenet/model.keras",)
    ),
    "tfderain export savedmodel -o exported/default --version 1": Run(
        "serving", saved_model("exported/default")
    ),
    "tfderain export savedmodel --model mprnet --weights model_deraining.pth -o exported/mprnet "
    "--version 1": Run(
        "serving", saved_model("exported/mprnet"), replace=(("model_deraining.pth", MPRNET_PTH),)
    ),
    'docker run --rm -p 8500:8500 -p 8501:8501 -v "$PWD/exported/prenet:/models/prenet" '
    "tensorflow/serving --model_name=prenet --model_base_path=/models/prenet": Skip(
        "Docker and the tensorflow/serving image (network)"
    ),
    "curl http://localhost:8501/v1/models/prenet": Skip(TF_SERVING),
    "curl http://localhost:8501/v1/models/prenet/metadata": Skip(TF_SERVING),
    REST_CLIENT: Skip(TF_SERVING + " (export/serve.py answers gRPC only)"),
    'curl -d \'{"inputs": {"images": [[[[0.2, 0.3, 0.4], [0.5, 0.5, 0.5]]]]}}\' '
    "http://localhost:8501/v1/models/prenet:predict": Skip(TF_SERVING),
    "python export/serve.py exported/prenet --port 8500 --model-name prenet": Run(
        "serving",
        served,
        inputs=("exported/prenet",),
        replace=(("--port 8500", "--port {port}"),),
        note="a free port",
        server=True,
    ),
    "W=../shared/weights/PReNet/logs/Rain100H/PReNet6/net_latest.pth": Run(
        "export", nothing_more, append=' && test -f "$W"'
    ),
    "tfderain export tflite --model prenet --weights $W --quant none -o prenet_fp32.tflite": Run(
        "export", tflite("prenet_fp32.tflite", "none"), replace=(W,)
    ),
    "tfderain export tflite --model prenet --weights $W --quant fp16 --dynamic "
    "-o prenet_fp16.tflite": Run("export", tflite("prenet_fp16.tflite", "fp16"), replace=(W,)),
    "tfderain export tflite --model prenet --weights $W --quant int8 --tile 256 --representative "
    "../shared/data/Rain100H-20 --uint8-io -o prenet_int8.tflite": Run(
        "export",
        tflite("prenet_int8.tflite", "int8", np.uint8),
        replace=(W, ("--tile 256", "--tile 64")),
        note="32 calibration crops of 64×64: at 256×256 the calibration alone takes minutes",
    ),
    "tfderain export tflite --model prenet --weights $W --quant qat -o prenet_qat.tflite": Run(
        "export", tflite("prenet_qat.tflite", "qat"), replace=(W,), append=SHORT_QAT
    ),
    # android_demo/README.md
    "python export/android_assets.py": Run(
        "android", android_assets, append=SHORT_ANDROID, note=SHORT_ANDROID_NOTE
    ),
    "python android_demo/tools/score_assets.py --data ../shared/data/Rain100H-20 --max-loss 0.3": (
        Run(
            "android",
            android_scores,
            inputs=("assets_models",),
            append=" --models assets_models",
            note="the models exported as above, in the run's folder",
        )
    ),
}

#: The test file of each ``Run.file``.
FILES = {
    "docs": "test_readme_commands.py",
    "train": "test_readme_commands_train.py",
    "serving": "test_readme_commands_serving.py",
    "export": "test_readme_commands_export.py",
    "android": "test_readme_commands_android.py",
}


def commands_of(file: str) -> list[str]:
    """The documented commands that the test file ``FILES[file]`` runs."""
    return [c for c, how in COMMANDS.items() if isinstance(how, Run) and how.file == file]


def test_id(command: str) -> str:
    return command.splitlines()[0][:80]


# ----------------------------------------------------------------------------------- runner


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_folder(run: Run, inputs: Inputs, tmp_path: Path) -> Path:
    """A clone-like folder ``tmp_path/repo`` with ``../shared``, the checkout's folders and
    the run's inputs."""
    cwd = tmp_path / "repo"
    cwd.mkdir()
    os.symlink(inputs.shared.resolve(), tmp_path / "shared")
    for name in CHECKOUT:
        os.symlink(REPO / name, cwd / name)
    for name in run.inputs:
        target = cwd / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if INPUTS[name].build is None:
            target.mkdir()
        else:
            os.symlink(inputs.get(name).resolve(), target)
    return cwd


def environment(tmp_path: Path, inputs: Inputs, presets: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env["TFDERAIN_HOME"] = str(tmp_path / "home")
    # Presets come from the mirror of ../shared/weights; without one nothing may be downloaded.
    mirror = inputs.mirror() if presets else tmp_path / "no-mirror"
    env["TFDERAIN_MIRROR"] = str(mirror)
    return env


def run_documented(documented: str, inputs: Inputs, tmp_path: Path) -> None:
    """Run ``documented`` as :data:`COMMANDS` says and apply its check."""
    how = COMMANDS[documented]
    assert isinstance(how, Run)
    cwd = prepare_folder(how, inputs, tmp_path)
    command = how.command(documented)
    env = environment(tmp_path, inputs, how.presets)
    if how.server:
        _run_server(how, command, cwd, env)
        return
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{command}\nexit status {done.returncode}\n{done.stderr}"
    how.check(Outcome(cwd, done.stdout, done.stderr))


def _run_server(how: Run, command: str, cwd: Path, env: dict[str, str]) -> None:
    port = _free_port()
    log = cwd / "server.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            ["bash", "-c", "exec " + command.format(port=port)],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while "Serving " not in log.read_text():  # its line once the model is loaded
            assert server.poll() is None, f"the server exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"no server on port {port}: {log.read_text()}"
            time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # it listens
        how.check(Outcome(cwd, log.read_text(), "", address=f"127.0.0.1:{port}"))
        assert server.poll() is None, "the server stopped while answering"
        server.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert server.wait(timeout=60) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
