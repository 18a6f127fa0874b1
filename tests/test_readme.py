"""The README cannot rot: its "Your own images" commands run as written (on a generated folder,
with tiny epochs added to `train`), and every file, config and suite it names exists."""

import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image

from longtail.cli import main

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def _block(heading: str) -> list[str]:
    """The `longtail ...` lines of the first code block under ``heading``."""
    part = README[README.index(heading):]
    code = part[part.index("```") + 3:]
    code = code[:code.index("```")]
    return [ln.split("#")[0].strip() for ln in code.splitlines() if ln.strip().startswith("longtail ")]


def test_the_own_images_quickstart_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for c, (name, n) in enumerate((("cat", 20), ("dog", 8), ("owl", 4))):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12, 3), 40 + 90 * c, np.uint8)).save(tmp_path / "photos" / name / f"{i}.png")
    (tmp_path / "new_images").mkdir()
    Image.fromarray(np.full((12, 12, 3), 40, np.uint8)).save(tmp_path / "new_images" / "a.png")
    Image.fromarray(np.full((12, 12, 3), 220, np.uint8)).save(tmp_path / "one_more.jpg")
    commands = _block("## Your own images")
    assert [c.split()[1] for c in commands] == ["info", "train", "predict", "export"]
    # the pretrained first try at a tiny input size and one fine-tuning epoch (the budget then has room)
    tiny = ["--set", "data.image_size=32", "--set", "data.resize=36", "--set", "stages.finetune.epochs=1",
            "--set", "engine.progress=false", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    for command in commands:
        args = [a.replace("configs/", str(ROOT / "configs") + "/") for a in shlex.split(command)[1:]]
        assert main(args + (tiny if args[0] == "train" else [])) == 0, command
    assert (tmp_path / "predictions.csv").read_text().count("\n") == 3  # a header and two images
    assert (tmp_path / "runs" / "photos" / "export" / "model.torchscript.pt").is_file()


def test_every_path_the_readme_names_exists():
    names = set(re.findall(r"`((?:configs|benchmarks|docs|src|tests)/[\w./-]+?)`", README))
    names |= set(re.findall(r"\]\(((?:docs)/[\w./-]+)\)", README))
    missing = sorted(n for n in names if "<" not in n and not (ROOT / n).exists()
                     and not any((ROOT / n).parent.glob(Path(n).name)))
    assert names and not missing, missing


def test_every_relative_link_of_the_docs_resolves():
    """The README's and docs/'s Markdown links to files of the repository (pages, figures, results
    files) point at files that exist, from the page that holds them."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not link.startswith(("http:", "https:", "mailto:")) and not (page.parent / link).exists():
                broken.append(f"{page.relative_to(ROOT)}: {link}")
    assert not broken, broken
