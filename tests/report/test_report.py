"""fusionrec report on a demo run and an ablation run: every section, inline images only, no URL."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from fusionrec import cli
from tests.report.demo_runs import ablation_run, demo_dataset, train_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SECTIONS = ("metrics", "curves", "breakdowns", "beyond", "ablation", "embeddings", "users")


class Sections(HTMLParser):
    """Collects, per <section id=...>, its <img> sources and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.current: str | None = None
        self.images: dict[str, list[str]] = {}
        self.text: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = attrs.get("id")
            self.images.setdefault(self.current, [])
            self.text.setdefault(self.current, "")
        elif tag == "img" and self.current:
            self.images[self.current].append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.current:
            self.text[self.current] += data


def parse(path: Path) -> Sections:
    parser = Sections()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return root, demo_dataset(root / "shop")


def assert_offline(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text  # nothing to fetch, nothing to run


def test_report_of_a_demo_run_has_every_section_with_inline_images(demo, capsys):
    root, dataset = demo
    run = train_run(dataset, root / "runs")
    out = root / "demo.html"
    assert cli.main(["report", str(run), "--out", str(out), "--users", "2"]) == 0
    assert f"report: {out}" in capsys.readouterr().out
    assert_offline(out)
    page = parse(out)
    for anchor in SECTIONS:
        assert anchor in page.images, f"section {anchor} missing"
        if anchor != "ablation":
            assert any(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
                       for src in page.images[anchor]), anchor
    assert "not an ablation" in page.text["ablation"]
    assert all(src.startswith("data:image/") for imgs in page.images.values() for src in imgs)
    # thumbnails of the demo's rendered pictures, and its titles, in the user examples
    assert any(src.startswith("data:image/jpeg;base64,") for src in page.images["users"])
    assert "Wood" in page.text["users"] or "Lamp" in page.text["users"] or "Chair" in page.text["users"]
    # warm vs cold: the demo's new arrivals are cold items
    assert "cold" in page.text["breakdowns"]


def test_report_of_an_ablation_run_adds_the_ablation_bars(demo):
    root, dataset = demo
    folder = ablation_run(dataset, root / "runs")
    out = root / "ablation.html"
    assert cli.main(["report", str(folder), "--out", str(out), "--users", "1"]) == 0
    assert_offline(out)
    page = parse(out)
    for anchor in SECTIONS:
        assert any(src.startswith("data:image/") for src in page.images.get(anchor, [])), anchor
    # variants are named by what differs between them, the valid-best one detailed elsewhere
    text = page.text["ablation"]
    assert "modalities=text+image" in text and "modalities=image" in text
    assert "best on valid" in page.text["metrics"]


def test_closed_form_and_several_runs_side_by_side(demo):
    root, dataset = demo
    pop = train_run(dataset, root / "runs", model="pop", seeds=(1,))
    bpr = train_run(dataset, root / "runs", model="bpr", seeds=(1,))
    out = root / "two.html"
    assert cli.main(["report", str(pop), str(bpr), "--out", str(out), "--users", "1", "--map-items", "40"]) == 0
    page = parse(out)
    # pop: no epochs, no item vectors -- said so, not silently dropped
    assert "closed-form model" in page.text["curves"]
    assert "has no item vectors" in page.text["embeddings"]
    assert "pop" in page.text["metrics"] and "bpr" in page.text["metrics"]
    assert page.images["curves"]  # bpr's curves


def test_report_errors_name_the_folder(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "results.json is missing" in capsys.readouterr().err
