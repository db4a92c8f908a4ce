"""MkDocs hooks: pages generated from the repository at build time, so they cannot drift.

* ``index.md`` and ``getting-started.md`` are sections of ``README.md``;
* ``benchmarks.md`` is ``BENCHMARKS.md`` (its ``docs/`` links made relative to the site);
* ``environments/<name>.md`` is each registered env class's Markdown docstring with a demo
  image (``mmrl demo``'s frame after a few expert steps), drawn when the site is built;
* ``commands.md`` lists every option of every command (:data:`mmrl.commands.COMMAND_OPTIONS`),
  from the fields the CLI's flags are made from.

Referenced from ``mkdocs.yml`` (``hooks:``) and excluded from the pages themselves.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: page -> (source file, first line starting with, line that ends the section (exclusive)).
SECTIONS = {
    "index.md": ("README.md", "# ", "## Set-up"),
    "getting-started.md": ("README.md", "## Set-up", "## Layout"),
    "benchmarks.md": ("BENCHMARKS.md", "# ", None),
}
#: env page -> (Gymnasium id, the class whose docstring documents it)
ENVS = {
    "driving": ("mmrl/Driving-v1", "mmrl.envs.driving.env:DrivingEnv"),
    "navigation": ("mmrl/Navigation-v1", "mmrl.envs.navigation.env:NavigationEnv"),
}


def _section(source: str, start: str, end: str | None) -> str:
    lines = (ROOT / source).read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = len(lines)
    if end is not None:
        last = next(i for i, line in enumerate(lines) if line.startswith(end))
    text = "\n".join(lines[first:last]) + "\n"
    # Repository-relative links to docs/ files are site-relative here.
    return re.sub(r"\]\(docs/", "](", text)


def _demo_image(env_id: str) -> bytes:
    import cv2
    import gymnasium as gym

    import mmrl  # noqa: F401  (registers the ids)

    # render()'s frame: titled panels, named state, the env's own panels (Navigation's map).
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(25):
        _, _, terminated, truncated, _ = env.step(env.unwrapped.expert_action())
        if terminated or truncated:
            break
    frame = env.render()
    env.close()
    ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert ok, "PNG encoding failed"
    return png.tobytes()


def _env_page(name: str, env_id: str, target: str) -> str:
    import importlib

    module, cls = target.split(":")
    doc = inspect.getdoc(getattr(importlib.import_module(module), cls)) or ""
    # The docstring's own "## ..." sections sit one level below the page title.
    doc = re.sub(r"^## ", "### ", doc, flags=re.MULTILINE)
    if not doc.startswith("###"):
        doc = "### Summary\n\n" + doc
    return (
        f"# {env_id}\n\n![{name} demo]({name}.png)\n\n"
        f'`gym.make("{env_id}")` (class `{target.replace(":", ".")}`); the text below is its '
        f"docstring.\n\n{doc}\n"
    )


def commands_page() -> str:
    """The command-options reference: one table per command, from its options class."""
    import inspect

    from mmrl.commands import COMMAND_OPTIONS
    from mmrl.commands.options import options_table

    parts = [
        "# Command options\n\n"
        "Each command below takes its options from one typed dataclass in `mmrl.commands`; "
        "its `--help`, its handler and the library function behind it read the same fields, "
        "so this table, `mmrl COMMAND --help` and the Python defaults cannot differ. Run "
        "config fields (`--set key=value`) are in the [configuration reference]"
        "(configuration.md).\n"
    ]
    for name, cls in COMMAND_OPTIONS.items():
        summary = (inspect.getdoc(cls) or "").split("\n\n")[0]
        parts.append(
            f"\n## mmrl {name}\n\n{summary} (`mmrl.commands.{cls.__name__}`)\n\n"
            f"{options_table(cls)}"
        )
    return "".join(parts)


def on_files(files, config):
    """Adds the generated pages and images to the site's files."""
    from mkdocs.structure.files import File

    for page, (source, start, end) in SECTIONS.items():
        files.append(File.generated(config, page, content=_section(source, start, end)))
    files.append(File.generated(config, "commands.md", content=commands_page()))
    for name, (env_id, target) in ENVS.items():
        page = _env_page(name, env_id, target)
        files.append(File.generated(config, f"environments/{name}.md", content=page))
        files.append(
            File.generated(config, f"environments/{name}.png", content=_demo_image(env_id))
        )
    return files
