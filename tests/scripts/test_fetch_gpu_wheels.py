"""The dependency walk of ``scripts/fetch_gpu_wheels.py``, on fake metadata (no network)."""

import zipfile
from importlib.metadata import version

import pytest
from packaging.requirements import Requirement


@pytest.fixture(scope="module")
def fgw(load_script):
    return load_script("fetch_gpu_wheels")


# Trimmed from the real wheels' METADATA: extras-only lines, markers, mixed name spellings.
METADATA = {
    "gymnasium": [
        "numpy>=1.22.0",
        "cloudpickle>=1.2.0",
        "typing-extensions>=4.12.0",
        "farama-notifications>=0.0.1",
        'pygame-ce>=2.1.3; extra == "classic-control"',
        'box2d==2.3.10; python_version < "3.14" and extra == "box2d"',
        'pytest>=7.1.3; extra == "testing"',
    ],
    "stable-baselines3": [
        "gymnasium<2.0,>=0.29.1",
        "numpy<3.0,>=1.20",
        "torch<3.0,>=2.8",
        "cloudpickle",
        'opencv-python; extra == "extra"',
    ],
    "minari": [
        "numpy>=2.0.0",
        "typing_extensions>=4.4.0",
        "typer>=0.9.0",
        "gymnasium>=0.28.1",
        "packaging",
        'h5py>=3.8.0; extra == "hdf5"',
    ],
    "farama-notifications": [],
}
IMAGE = ["torch", "NumPy", "cloudpickle", "typing_extensions", "packaging", "typer", "h5py"]
ROOTS = [
    "torch>=2.2",
    "gymnasium>=1.0,<2",
    "stable-baselines3>=2.4,<3",
    "numpy>=1.26",
    "minari>=0.5.1",
    "h5py>=3.10",
]


def fake_requires(calls: list[str] | None = None):
    def requires_of(name: str) -> list[str]:
        if calls is not None:
            calls.append(name)
        return METADATA[name]

    return requires_of


def test_walk_carries_what_the_image_lacks_with_who_needs_it(fgw):
    calls = []
    closure = fgw.walk(ROOTS, fake_requires(calls), IMAGE)
    assert closure.carried == {
        "gymnasium": ["mmrl", "stable-baselines3", "minari"],
        "stable-baselines3": ["mmrl"],
        "minari": ["mmrl"],
        "farama-notifications": ["gymnasium"],
    }
    assert sorted(calls) == sorted(closure.carried)  # each wheel fetched once
    # Extras are not installed: their requirements are neither carried nor asked of the image.
    assert "pygame-ce" not in closure.carried and "pytest" not in closure.carried
    assert "h5py>=3.8.0" not in " ".join(closure.from_image["h5py"])
    # What the image must satisfy, with who asks (``--check`` verifies it there).
    assert "numpy>=2.0.0 (minari)" in closure.from_image["numpy"]
    assert "torch<3.0,>=2.8 (stable-baselines3)" in closure.from_image["torch"]
    assert [str(r) for r in closure.specifiers["gymnasium"]] == [
        "gymnasium<2,>=1.0",
        "gymnasium<2.0,>=0.29.1",
        "gymnasium>=0.28.1",
    ]


def test_markers_are_decided_for_the_image_python_not_this_one(fgw):
    metadata = {
        "pkg": [
            'old-backport; python_version < "3.11"',
            'new-helper; python_version >= "3.12"',
            'win-only; sys_platform == "win32"',
        ],
        "new-helper": [],
    }
    closure = fgw.walk(["pkg"], metadata.__getitem__, [])
    assert list(closure.carried) == ["pkg", "new-helper"]  # whatever Python runs the test
    older = {**fgw.IMAGE_ENVIRONMENT, "python_version": "3.10", "python_full_version": "3.10.0"}
    metadata["old-backport"] = []
    assert "old-backport" in fgw.walk(["pkg"], metadata.__getitem__, [], older).carried


def test_root_markers_are_evaluated_too(fgw):
    closure = fgw.walk(['pkg; python_version < "3.0"'], METADATA.__getitem__, [])
    assert closure.carried == {}


def test_an_extra_asked_for_pulls_its_requirements_once(fgw):
    metadata = {
        "pkg": ["base", 'fast-lib; extra == "fast"', 'docs-lib; extra == "docs"'],
        "base": [],
        "fast-lib": [],
        "user": ["pkg[fast]"],
    }
    calls = []

    def requires_of(name: str) -> list[str]:
        calls.append(name)
        return metadata[name]

    closure = fgw.walk(["pkg", "user"], requires_of, [])
    assert "fast-lib" in closure.carried and "docs-lib" not in closure.carried
    assert closure.carried["pkg"] == ["mmrl", "user"]
    assert calls.count("pkg") == 1  # revisited for the new extra without fetching again


def test_image_names_match_in_any_spelling(fgw):
    closure = fgw.walk(
        ["Farama_Notifications", "gymnasium"],
        METADATA.__getitem__,
        ["farama.notifications", *IMAGE],
    )
    assert list(closure.carried) == ["gymnasium"]


def test_image_list_file(fgw, tmp_path):
    path = tmp_path / "image.txt"
    path.write_text("# header\nPyYAML\n\n  typing_extensions  # inline comment\n")
    assert fgw.read_name_list(path) == {"pyyaml", "typing-extensions"}
    shipped = fgw.read_name_list(fgw.IMAGE_LIST)
    assert {"torch", "numpy", "h5py", "opencv-python-headless", "pytest"} <= shipped
    # The reason the wheels exist: the image lacks these (update both if that changes).
    assert not {"gymnasium", "stable-baselines3", "minari"} & shipped


def test_unmet_requirements(fgw):
    reqs = [Requirement(r) for r in ("torch>=2.8", "numpy>=2.0", "typer", "gone>=1")]
    versions = {"torch": "2.11.0+cu130", "numpy": "1.26.4", "typer": "0.9.0"}
    assert fgw.unmet(reqs, versions, "x") == [
        "x needs numpy>=2.0: 1.26.4 is installed",
        "x needs gone>=1: not installed",
    ]


def make_wheel(folder, name: str, version: str, requires: list[str]):
    path = folder / f"{name}-{version}-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(lines) + "\n\nreadme\n")
    return path


def test_wheel_metadata_is_read_from_the_file(fgw, tmp_path):
    path = make_wheel(tmp_path, "Farama_Notifications", "0.0.6", ["numpy>=1", 'x; extra == "y"'])
    assert fgw.wheel_name_version(path) == ("farama-notifications", "0.0.6")
    assert fgw.wheel_requires(path) == ["numpy>=1", 'x; extra == "y"']


def test_check_passes_for_installed_wheels_and_names_what_is_off(fgw, tmp_path, capsys):
    # This environment runs the test suite, so mmrl's own requirements are met here.
    make_wheel(tmp_path, "gymnasium", version("gymnasium"), ["numpy>=1.0"])
    assert fgw.main(["--check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 carried wheels; requirements of mmrl and of the wheels: all met" in out
    make_wheel(tmp_path, "not_installed_pkg", "1.0", ["numpy>=999"])
    assert fgw.main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not_installed_pkg-1.0-py3-none-any.whl is not the installed" in err
    assert "not-installed-pkg needs numpy>=999" in err
