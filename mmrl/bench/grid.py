"""The benchmark grid: cells (env x fusion x seed), validation, the protocol and resume.

A bench folder holds one *protocol* (steps, ``--set`` overrides, pretraining, evaluation
settings) and any number of cells run under it::

    OUT/bench.json                 the protocol and every cell ever requested
    OUT/cells/<env>-<fusion>-s<seed>/run/        the training run (``mmrl train`` layout)
    OUT/cells/<env>-<fusion>-s<seed>/cell.json   the finished cell's record (written last)
    OUT/cells/<env>-<fusion>-s<seed>/error.txt   traceback of the last failed attempt

``cell.json`` is written atomically once the cell is complete, so its presence is the
single "done" flag: a rerun of the same command skips those cells and finishes the rest.
Results of different protocols are never mixed in one folder (comparing fusions trained
for different budgets would be meaningless), but the grid may grow (more seeds, envs or
fusions) between invocations.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mmrl.commands.bench import BenchOptions
from mmrl.config import ConfigError, available_presets, find_preset, resolve_run_config

log = logging.getLogger(__name__)

MANIFEST = "bench.json"
CELLS_DIR = "cells"
CELL_RECORD = "cell.json"
CELL_ERROR = "error.txt"
RUN_SUBDIR = "run"
AGENT_PREFIX = "ppo-"
#: Bumped when the meaning of a cell record changes, so old folders are not silently mixed.
RECORD_VERSION = 1


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
    """One (environment, fusion, seed) training run of the grid.

    Attributes:
        env: Environment preset name (``driving``) or preset YAML path.
        fusion: Fusion name; the agent recipe is ``ppo-<fusion>``.
        seed: Run seed.
    """

    env: str
    fusion: str
    seed: int

    @property
    def env_name(self) -> str:
        """Short environment name (a preset path's file stem)."""
        return Path(self.env).stem

    @property
    def agent(self) -> str:
        """Agent recipe of the cell."""
        return f"{AGENT_PREFIX}{self.fusion}"

    @property
    def encoder_name(self) -> str:
        """File name of the cell's encoder checkpoint in a ``--pretrained-dir``."""
        return f"{self.env_name}-{self.fusion}.pt"

    @property
    def cell_id(self) -> str:
        """Folder name of the cell, unique within a grid."""
        return f"{self.env_name}-{self.fusion}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"env": self.env, "fusion": self.fusion, "seed": self.seed}


@dataclasses.dataclass
class BenchSpec:
    """A benchmark: the grid and the protocol every cell of it follows.

    Attributes:
        envs: Environment preset names (or YAML paths).
        fusions: Fusion names (each needs an agent recipe ``ppo-<fusion>``).
        seeds: Run seeds.
        steps: Environment steps per cell.
        overrides: ``--set`` overrides applied to every cell's run config.
        device: ``auto``, ``cpu`` or ``cuda[:N]`` for training and evaluation.
        pretrained_dir: Folder of ``mmrl pretrain`` checkpoints named ``<env>-<fusion>.pt``
            (``None``: train from scratch).
        ablate: Evaluate with each modality removed in turn.
        ablation_episodes: Episodes per ablation (``None``: the run's ``eval_episodes``).
        threads: Torch CPU threads per cell (keeps parallel cells from oversubscribing).
        track: A :class:`mmrl.tracking.Tracking`: every cell's training run is tracked
            (not part of the protocol: tracking does not change results).
    """

    envs: list[str]
    fusions: list[str]
    seeds: list[int]
    steps: int
    overrides: list[str] = dataclasses.field(default_factory=list)
    device: str = BenchOptions.device
    pretrained_dir: str | None = None
    ablate: bool = True
    ablation_episodes: int | None = None
    threads: int = 1
    track: Any = None

    def cells(self) -> list[Cell]:
        """Every cell, env-major then fusion then seed (the order they are scheduled in)."""
        return [Cell(e, f, s) for e in self.envs for f in self.fusions for s in self.seeds]

    def protocol(self) -> dict[str, Any]:
        """What must be equal for two cells' results to be comparable."""
        return {
            "steps": self.steps,
            "overrides": list(self.overrides),
            "device": self.device,
            "pretrained": self.pretrained_digests(),
            "ablate": self.ablate,
            "ablation_episodes": self.ablation_episodes,
            "record_version": RECORD_VERSION,
        }

    def pretrained_digests(self) -> dict[str, str] | None:
        """The grid's encoder checkpoints by file name with the first 16 hex digits of their
        SHA-256, or ``None`` when training from scratch (or a checkpoint is missing, which
        :func:`validate_spec` refuses).

        The protocol records the checkpoints' content, not the folder's path: a grid then
        resumes from any checkout or machine (a fresh clone, the GPU machine's copy) holding
        the same encoders, and never mixes cells fine-tuned from different ones unless told
        to (:func:`prepare_out`'s ``adopt_encoders``)."""
        if self.pretrained_dir is None:
            return None
        names = sorted({c.encoder_name for c in self.cells()})
        paths = [Path(self.pretrained_dir) / name for name in names]
        if not all(path.is_file() for path in paths):
            return None
        return {path.name: _digest(path) for path in paths}

    def pretrained_path(self, cell: Cell) -> Path | None:
        """The encoder checkpoint of a cell, or ``None`` when training from scratch."""
        if self.pretrained_dir is None:
            return None
        return Path(self.pretrained_dir) / cell.encoder_name

    def cell_overrides(self, cell: Cell) -> list[str]:
        """``--set`` overrides of one cell: the protocol's plus its pretrained checkpoint."""
        overrides = list(self.overrides)
        path = self.pretrained_path(cell)
        if path is not None:
            # JSON-quoted: the override is parsed as YAML, where a path with ": " or " #"
            # would not stay a string.
            overrides.append(f"agent.init.path={json.dumps(str(path))}")
        return overrides


def available_fusions() -> list[str]:
    """Fusions that have an agent recipe ``ppo-<fusion>``."""
    names = available_presets("agents")
    return [n[len(AGENT_PREFIX) :] for n in names if n.startswith(AGENT_PREFIX)]


def parse_list(value: str | Sequence[str], what: str) -> list[str]:
    """``"a,b, c"`` (or a list) -> ``["a", "b", "c"]`` without empties or duplicates.

    Raises:
        ConfigError: On an empty list or a repeated name.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [item.strip() for item in items if item.strip()]
    if not names:
        raise ConfigError(f"--{what}: give at least one name")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--{what}: {', '.join(repeated)} given more than once")
    return names


def validate_spec(spec: BenchSpec) -> None:
    """Checks the grid and protocol before any cell runs.

    Every (env, fusion) run config is resolved with the overrides, so a typo in ``--set``
    or a bad value fails now, not hours later in some worker.

    Raises:
        ConfigError: Unknown env or fusion (listing the available ones), no seeds, steps
            below 1, duplicate names, bad overrides, or missing pretrained checkpoints.
    """
    if not spec.envs:
        raise ConfigError("--envs: give at least one environment preset")
    if not spec.fusions:
        raise ConfigError("--fusions: give at least one fusion")
    if len(spec.seeds) < 1:
        raise ConfigError("--seeds must be >= 1 (number of seeds per env x fusion)")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ConfigError(f"seeds must be distinct, got {spec.seeds}")
    if spec.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {spec.steps}")
    if spec.ablation_episodes is not None and spec.ablation_episodes < 1:
        raise ConfigError(f"ablation episodes must be >= 1, got {spec.ablation_episodes}")
    if spec.threads < 1:
        raise ConfigError(f"threads per cell must be >= 1, got {spec.threads}")
    for env in spec.envs:
        try:
            find_preset("envs", env)
        except ConfigError:
            raise ConfigError(
                f"--envs: unknown environment preset {env!r}; available: "
                f"{', '.join(available_presets('envs'))}"
            ) from None
    stems = [Path(e).stem for e in spec.envs]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"--envs: two presets share a name ({', '.join(spec.envs)})")
    known = available_fusions()
    unknown = [f for f in spec.fusions if f not in known]
    if unknown:
        raise ConfigError(
            f"--fusions: unknown fusion {unknown[0]!r}; available: {', '.join(known)} "
            f"(each needs an agent recipe {AGENT_PREFIX}<fusion>.yaml)"
        )
    if spec.pretrained_dir is not None:
        folder = Path(spec.pretrained_dir)
        if not folder.is_dir():
            raise ConfigError(f"--pretrained-dir {folder}: no such folder")
        missing = [
            f"{e}-{f}.pt"
            for e in stems
            for f in spec.fusions
            if not (folder / f"{e}-{f}.pt").is_file()
        ]
        if missing:
            raise ConfigError(
                f"--pretrained: {folder} lacks encoder checkpoint(s) {', '.join(missing)}; "
                f"write one per env and fusion with mmrl pretrain, named <env>-<fusion>.pt"
            )
    sample_seed = spec.seeds[0]
    for env in spec.envs:
        for fusion in spec.fusions:
            cell = Cell(env, fusion, sample_seed)
            resolve_run_config(
                env, cell.agent, spec.cell_overrides(cell), steps=spec.steps, seed=sample_seed
            )


# ---------------------------------------------------------------------------- folder state
def cell_dir(out: Path, cell: Cell) -> Path:
    """Folder of one cell inside a bench folder."""
    return Path(out) / CELLS_DIR / cell.cell_id


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic JSON write (readers never see half a file)."""
    from mmrl.checkpoint import atomic_write_bytes  # imports torch: only when writing

    atomic_write_bytes(Path(path), (json.dumps(data, indent=2) + "\n").encode())


@functools.lru_cache(maxsize=256)
def _digest_cached(path: str, mtime_ns: int, size: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def _digest(path: Path) -> str:
    """First 16 hex digits of a file's SHA-256 (cached while its size and mtime hold: the
    protocol is asked for once per cell)."""
    st = path.stat()
    return _digest_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


def protocol_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two protocols; a key one of them lacks counts as
    ``None`` there, so a protocol entry added later (``None`` when unused) does not set
    apart the cells recorded before it existed."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def cell_protocol(protocol: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """The part of a protocol one cell's results depend on: the grid's settings and the
    cell's own encoder checkpoint (not the other fusions' ones, so rebuilding or adding one
    encoder leaves the other fusions' finished cells valid)."""
    digests = protocol.get("pretrained")
    if not isinstance(digests, dict):
        return dict(protocol)
    return {**protocol, "pretrained": {cell.encoder_name: digests.get(cell.encoder_name)}}


def _without_encoders(protocol: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in protocol.items() if k != "pretrained"}


def prepare_out(out: Path, spec: BenchSpec, adopt_encoders: bool = False) -> None:
    """Creates or reopens a bench folder, refusing one that holds another protocol.

    The grid may grow (envs, fusions, seeds); its settings may not change. Encoder
    checkpoints rebuilt with the same ``mmrl pretrain`` commands but other bytes (another
    machine's floating point: another CPU, CUDA, another thread count) are refused too,
    unless ``adopt_encoders``: the folder then keeps the earlier digests as
    ``adopted_encoders`` in ``bench.json``, its finished cells stay finished, the remaining
    ones are fine-tuned from the new checkpoints, and the report says which cells used which.

    Raises:
        ConfigError: ``out`` holds a bench run with different steps, overrides, device,
            pretraining or ablation settings, or (without ``adopt_encoders``) other encoder
            checkpoints under the same names.
    """
    out = Path(out)
    manifest = read_json(out / MANIFEST)
    protocol = spec.protocol()
    requested = [c.to_dict() for c in spec.cells()]
    if manifest is None:
        if out.exists() and any(out.iterdir()) and not (out / CELLS_DIR).is_dir():
            raise ConfigError(f"--out {out} exists and is not a bench folder; pick another")
        write_json(out / MANIFEST, {"protocol": protocol, "cells": requested})
        return
    old = manifest.get("protocol", {})
    changed = protocol_differences(_without_encoders(old), _without_encoders(protocol))
    old_enc, new_enc = old.get("pretrained"), protocol.get("pretrained")
    if (old_enc is None) != (new_enc is None):
        changed.append("pretrained")
    if changed:
        diffs = "; ".join(f"{k}: {old.get(k)!r} there, {protocol.get(k)!r} now" for k in changed)
        raise ConfigError(
            f"--out {out} holds a bench with a different protocol ({diffs}); "
            f"use a new --out so results stay comparable"
        )
    adopted = {k: list(v) for k, v in (manifest.get("adopted_encoders") or {}).items()}
    if new_enc is not None:
        rebuilt = sorted(n for n in new_enc if n in old_enc and old_enc[n] != new_enc[n])
        if rebuilt and not adopt_encoders:
            diffs = "; ".join(f"{n}: {old_enc[n]} there, {new_enc[n]} now" for n in rebuilt)
            raise ConfigError(
                f"--out {out} holds cells fine-tuned from other encoder checkpoints ({diffs}); "
                "if these were rebuilt with the same mmrl pretrain commands (another machine's "
                "floating point gives other bytes), add --adopt-encoders to keep those cells "
                "and fine-tune the rest from these; otherwise use a new --out"
            )
        for name in rebuilt:
            if old_enc[name] not in adopted.setdefault(name, []):
                adopted[name].append(old_enc[name])
        protocol = {**protocol, "pretrained": dict(sorted({**old_enc, **new_enc}.items()))}
    cells = list(manifest.get("cells", []))
    cells += [c for c in requested if c not in cells]
    extra = {"adopted_encoders": adopted} if adopted else {}
    write_json(out / MANIFEST, {"protocol": protocol, "cells": cells, **extra})


def adopted_encoders(out: Path) -> dict[str, list[str]]:
    """Earlier digests of a folder's encoder checkpoints whose cells still count, by name
    (see :func:`prepare_out`)."""
    return (read_json(Path(out) / MANIFEST) or {}).get("adopted_encoders") or {}


def load_record(
    out: Path,
    cell: Cell,
    protocol: dict[str, Any] | None = None,
    adopted: dict[str, list[str]] | None = None,
) -> dict | None:
    """The finished record of a cell, or ``None`` if it still has to run.

    A record written under another protocol (a folder edited by hand) counts as unfinished;
    only the cell's own encoder digest is compared, and one among the folder's ``adopted``
    digests (:func:`adopted_encoders`) counts as the current one.
    """
    path = cell_dir(out, cell) / CELL_RECORD
    if not path.exists():
        return None
    record = read_json(path)
    if record is None or "cell" not in record:
        log.warning("%s is unreadable; the cell will run again", path)
        return None
    if protocol is not None:
        theirs = cell_protocol(record.get("protocol") or {}, cell)
        changed = protocol_differences(theirs, cell_protocol(protocol, cell))
        if changed == ["pretrained"] and isinstance(theirs.get("pretrained"), dict):
            digest = theirs["pretrained"].get(cell.encoder_name)
            if digest in (adopted or {}).get(cell.encoder_name, ()):
                changed = []
        if changed:
            log.warning("%s was written under another protocol; the cell will run again", path)
            return None
    return record


def split_done(out: Path, spec: BenchSpec) -> tuple[list[tuple[Cell, dict[str, Any]]], list[Cell]]:
    """Cells of ``spec`` that already finished (with their records) and those still to run."""
    protocol = spec.protocol()
    adopted = adopted_encoders(out)
    done: list[tuple[Cell, dict[str, Any]]] = []
    todo: list[Cell] = []
    for cell in spec.cells():
        record = load_record(out, cell, protocol, adopted)
        if record is None:
            todo.append(cell)
        else:
            done.append((cell, record))
    return done, todo


def all_records(out: Path) -> list[dict[str, Any]]:
    """Every finished cell record in a bench folder (what the report covers)."""
    out = Path(out)
    manifest = read_json(out / MANIFEST) or {}
    protocol = manifest.get("protocol")
    adopted = manifest.get("adopted_encoders") or {}
    records = []
    for item in manifest.get("cells", []):
        try:
            cell = Cell(str(item["env"]), str(item["fusion"]), int(item["seed"]))
        except (KeyError, TypeError, ValueError):
            continue
        record = load_record(out, cell, protocol, adopted)
        if record is not None:
            records.append(record)
    return records


def write_record(out: Path, record: dict[str, Any]) -> Path:
    """Writes a finished cell's ``cell.json`` (atomic) and clears its old error file."""
    cell = Cell(**record["cell"])
    folder = cell_dir(out, cell)
    write_json(folder / CELL_RECORD, record)
    (folder / CELL_ERROR).unlink(missing_ok=True)
    return folder / CELL_RECORD


def write_error(out: Path, cell: Cell, text: str) -> Path:
    """Records why a cell failed (the cell stays unfinished, so a rerun retries it)."""
    from mmrl.checkpoint import atomic_write_bytes

    path = cell_dir(out, cell) / CELL_ERROR
    atomic_write_bytes(path, text.encode())
    return path


def seeds_from_count(count: int, start: int = 0) -> list[int]:
    """``--seeds N`` -> ``[start, ..., start + N - 1]``.

    Raises:
        ConfigError: If ``count`` < 1.
    """
    if count < 1:
        raise ConfigError(f"--seeds must be >= 1 (seeds per env x fusion), got {count}")
    return list(range(start, start + count))


def describe(cells: Iterable[Cell]) -> str:
    """``"3 envs x 6 fusions x 3 seeds"``-style summary of a set of cells."""
    cells = list(cells)
    envs = {c.env for c in cells}
    fusions = {c.fusion for c in cells}
    seeds = {c.seed for c in cells}
    return f"{len(envs)} env(s) x {len(fusions)} fusion(s) x {len(seeds)} seed(s)"
