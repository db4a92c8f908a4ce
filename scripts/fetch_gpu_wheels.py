"""Wheels that make mmrl run on the lent GPU machine, which has no package index.

The device tool's GPU image (Python 3.12.3, CUDA torch, numpy, pandas, h5py ...) lacks a few
of mmrl's runtime dependencies (gymnasium, stable-baselines3, minari and what they need), and
nothing can be downloaded there. This script downloads, here, the Python 3.12 manylinux x86-64
wheels of every distribution that ``pyproject.toml``'s ``dependencies`` need, directly or
through ``Requires-Dist`` (extras skipped, markers evaluated for the image), that
``scripts/gpu_image_packages.txt`` does not list. Versions are pinned to the ones installed in
the environment of the Python that runs this script, so the GPU machine runs the versions the
test suite passes with here. ``scripts/gpu_check.sh`` installs the folder offline.

Run it with the interpreter of the environment mmrl is installed in::

    /work/main/.venv/bin/python scripts/fetch_gpu_wheels.py            # -> .whl/
    python scripts/fetch_gpu_wheels.py --out .whl --max-mib 48

It empties ``--out`` of ``*.whl`` first (two versions of one distribution stop an offline
install), prints one line per wheel with its size and what needs it, the requirements the image
must satisfy itself, and the total size; it exits 1 when the total passes ``--max-mib`` (the
device tool carries at most 64 MiB per call, the working tree included: ~10 MiB in
2026-12; PyAV's wheel alone is ~35 MiB, hence the 48 MiB default).

On the GPU machine, after installing the wheels, ``--check DIR`` verifies offline that every
requirement of the carried wheels and of mmrl is installed at a version that satisfies it;
it prints each unmet one and exits 1 when there are any::

    python3 scripts/fetch_gpu_wheels.py --check .whl
"""

from __future__ import annotations

import argparse
import datetime
import email.parser
import importlib.metadata
import subprocess
import sys
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
IMAGE_LIST = Path(__file__).resolve().with_name("gpu_image_packages.txt")

# PEP 508 marker values of the GPU image's interpreter (python3 there is CPython 3.12.3 on
# x86-64 Linux), so that a requirement such as `box2d; python_version < "3.14"` is decided
# for the machine the wheels go to, not for the Python that runs this script.
IMAGE_ENVIRONMENT: dict[str, str] = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.3",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.12.3",
    "python_version": "3.12",
    "sys_platform": "linux",
}

# pip matches manylinux_2_N tags exactly, so every glibc the image can load is named; the image
# is Ubuntu 24.04 (glibc 2.39). Pure-python wheels (py3-none-any) match any of these.
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


@dataclass
class Closure:
    """What a set of requirements needs beyond an image.

    Attributes:
        carried: Distributions to carry (canonical names, in the order the walk met them),
            each with the distributions that require it (``mmrl`` for the roots).
        from_image: Requirements met by the image, as ``name -> ["<requirement> (<by>)"]``:
            what the image's versions must satisfy (checked there by ``--check``).
        specifiers: Every requirement string met per carried distribution, to check the pins.
    """

    carried: dict[str, list[str]] = field(default_factory=dict)
    from_image: dict[str, list[str]] = field(default_factory=dict)
    specifiers: dict[str, list[Requirement]] = field(default_factory=dict)


def read_name_list(path: Path) -> set[str]:
    """Canonical distribution names of a file with one per line; ``#`` starts a comment."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(canonicalize_name(line))
    return names


def project_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The ``[project] dependencies`` of ``pyproject``: mmrl's runtime requirements."""
    with pyproject.open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def needed_requirements(
    requires_dist: Iterable[str],
    extras: Iterable[str] = (),
    environment: Mapping[str, str] | None = None,
) -> list[Requirement]:
    """The requirements among ``requires_dist`` that an install with ``extras`` pulls in.

    Args:
        requires_dist: ``Requires-Dist`` values (PEP 508 strings).
        extras: Extras asked for; lines whose marker needs another extra are skipped.
        environment: Marker values of the target interpreter (:data:`IMAGE_ENVIRONMENT`);
            ``None`` means the interpreter running this code.
    """
    chosen = []
    for line in requires_dist:
        req = Requirement(line)
        if req.marker is None or any(
            req.marker.evaluate({**(environment or {}), "extra": extra}) for extra in ("", *extras)
        ):
            chosen.append(req)
    return chosen


def walk(
    roots: Iterable[str],
    requires_of: Callable[[str], Iterable[str]],
    image: Iterable[str],
    environment: Mapping[str, str] | None = IMAGE_ENVIRONMENT,
) -> Closure:
    """Breadth-first walk of ``Requires-Dist`` from ``roots``, stopping at the image.

    A distribution the image holds is not opened (its own needs are the image's business,
    and its extras too: a limitation, as none of mmrl's requirements names one).

    Args:
        roots: Requirement strings of the project (``pyproject.toml`` ``dependencies``).
        requires_of: ``Requires-Dist`` lines of a distribution, by canonical name; called
            once per carried distribution (the real one downloads its wheel).
        image: Names of the distributions already installed there.
        environment: Marker values of the target interpreter.
    """
    image = {canonicalize_name(n) for n in image}
    closure = Closure()
    metadata: dict[str, list[str]] = {}
    extras_seen: dict[str, set[str]] = {}
    queue = deque(("mmrl", r) for r in needed_requirements(roots, (), environment))
    while queue:
        parent, req = queue.popleft()
        name = canonicalize_name(req.name)
        if name in image:
            closure.from_image.setdefault(name, []).append(f"{req} ({parent})")
            continue
        by = closure.carried.setdefault(name, [])
        if parent not in by:
            by.append(parent)
        closure.specifiers.setdefault(name, []).append(req)
        # Revisit a distribution only when asked for with an extra not yet walked.
        if name in extras_seen and set(req.extras) <= extras_seen[name]:
            continue
        extras_seen[name] = extras_seen.get(name, set()) | set(req.extras)
        if name not in metadata:
            metadata[name] = list(requires_of(name))
        for child in needed_requirements(metadata[name], extras_seen[name], environment):
            queue.append((name, child))
    return closure


def installed_versions() -> dict[str, str]:
    """Canonical name -> version of every distribution visible to this interpreter.

    The first one on ``sys.path`` wins, as for imports (``--target`` folders first).
    """
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(canonicalize_name(name), dist.version)
    return versions


def wheel_name_version(path: Path) -> tuple[str, str]:
    """Canonical distribution name and version from a wheel's file name (PEP 427)."""
    name, version = path.name.split("-")[:2]
    return canonicalize_name(name), version


def wheel_requires(path: Path) -> list[str]:
    """``Requires-Dist`` lines of a wheel's ``METADATA``."""
    with zipfile.ZipFile(path) as zf:
        member = next(
            n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        )
        text = zf.read(member).decode("utf-8")
    return email.parser.Parser().parsestr(text, headersonly=True).get_all("Requires-Dist") or []


def download(name: str, version: str, out: Path) -> Path:
    """Downloads the cp312 manylinux x86-64 wheel of ``name==version`` into ``out``.

    Raises:
        SystemExit: pip found no such wheel (its output says why).
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "-d",
        str(out),
    ]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    cmd.append(f"{name}=={version}")
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit(
            f"fetch_gpu_wheels: pip found no Python 3.12 x86-64 wheel of "
            f"{name}=={version} (command: {' '.join(cmd)})"
        )
    for path in out.glob("*.whl"):
        if wheel_name_version(path) == (name, version):
            return path
    raise SystemExit(
        f"fetch_gpu_wheels: pip reported success but no {name} {version} wheel is in {out}"
    )


def fetch(out: Path, image: set[str], max_mib: float) -> int:
    """Walks mmrl's dependencies, downloads the missing wheels, prints the summary."""
    pins = installed_versions()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.whl"):
        stale.unlink()
    wheels: dict[str, Path] = {}

    def requires_of(name: str) -> list[str]:
        if name not in pins:
            raise SystemExit(
                f"fetch_gpu_wheels: {name} is not installed in {sys.executable}'s "
                f"environment, so there is no version to pin; run this script "
                f"with the Python of the environment mmrl is installed in"
            )
        wheels[name] = download(name, pins[name], out)
        return wheel_requires(wheels[name])

    closure = walk(project_dependencies(), requires_of, image)
    for name, reqs in closure.specifiers.items():
        for req in reqs:
            if not req.specifier.contains(Version(pins[name]), prereleases=True):
                raise SystemExit(
                    f"fetch_gpu_wheels: the installed {name} {pins[name]} does "
                    f"not satisfy {req}; reinstall the environment"
                )
    total = sum(p.stat().st_size for p in wheels.values())
    print(
        f"# fetch_gpu_wheels {datetime.date.today()}: wheels for the GPU image "
        f"(CPython 3.12, manylinux x86-64) into {out}"
    )
    print(f"# reproduce: {Path(sys.executable)} scripts/fetch_gpu_wheels.py --out {out}")
    print("| wheel | KiB | needed by |")
    print("| --- | ---: | --- |")
    for name, by in closure.carried.items():
        path = wheels[name]
        print(f"| {path.name} | {path.stat().st_size / 1024:.0f} | {', '.join(by)} |")
    print("requirements the image must meet itself (checked there by --check):")
    for name in sorted(closure.from_image):
        print(f"  {name}: {'; '.join(closure.from_image[name])}")
    mib = total / 2**20
    print(
        f"total: {len(wheels)} wheels, {mib:.2f} MiB (limit here {max_mib:g} MiB; the "
        f"device tool carries 64 MiB per call, working tree included)"
    )
    if mib > max_mib:
        print(f"fetch_gpu_wheels: {mib:.2f} MiB is over --max-mib {max_mib:g}", file=sys.stderr)
        return 1
    return 0


def unmet(requirements: Iterable[Requirement], versions: Mapping[str, str], by: str) -> list[str]:
    """One line per requirement that ``versions`` (canonical name -> version) does not meet."""
    problems = []
    for req in requirements:
        have = versions.get(canonicalize_name(req.name))
        if have is None:
            problems.append(f"{by} needs {req}: not installed")
        elif not req.specifier.contains(Version(have), prereleases=True):
            problems.append(f"{by} needs {req}: {have} is installed")
    return problems


def check(folder: Path) -> int:
    """On the target machine: are the carried wheels installed, and all they need met?"""
    versions = installed_versions()
    wheels = sorted(folder.glob("*.whl"))
    problems = unmet(needed_requirements(project_dependencies()), versions, "mmrl")
    for path in wheels:
        name, version = wheel_name_version(path)
        if versions.get(name) != version:
            problems.append(
                f"{path.name} is not the installed {name} "
                f"({versions.get(name, 'none')} is); is its folder on PYTHONPATH?"
            )
        problems += unmet(needed_requirements(wheel_requires(path)), versions, name)
    for line in problems:
        print(f"fetch_gpu_wheels --check: {line}", file=sys.stderr)
    print(
        f"fetch_gpu_wheels --check: {len(wheels)} carried wheels; requirements of mmrl and "
        f"of the wheels: {'all met' if not problems else f'{len(problems)} unmet'}"
    )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".whl", help="wheel folder")
    parser.add_argument(
        "--image",
        type=Path,
        default=IMAGE_LIST,
        help="distributions the GPU image already has, one per line",
    )
    parser.add_argument(
        "--max-mib", type=float, default=48.0, help="exit 1 when the wheels total more (default 48)"
    )
    parser.add_argument(
        "--check",
        type=Path,
        metavar="DIR",
        help="offline, on the target: verify the installed wheels of DIR",
    )
    args = parser.parse_args(argv)
    if args.check is not None:
        return check(args.check)
    return fetch(args.out, read_name_list(args.image), args.max_mib)


if __name__ == "__main__":
    sys.exit(main())
