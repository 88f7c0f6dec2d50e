"""`dlc graph`: DOT, SVG and HTML pictures of a spec (or its optimized IR), through the CLI,
and the HTML page in a real browser (headless Chromium from the distribution's packages)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import run_cli

RESNET18 = "specs/cnn/resnet18.yaml"
SVG = "{http://www.w3.org/2000/svg}"


def _layer_names(spec: str) -> set[str]:
    """Every block layer of the spec, as `dlc summary --json` lists them."""
    result = run_cli("summary", spec, "--json")
    assert result.code == 0, result.output
    return {layer["name"] for layer in json.loads(result.stdout)["layers"]}


def _draw(tmp_path: Path, name: str, *options: str, spec: str = RESNET18) -> str:
    output = tmp_path / name
    result = run_cli("graph", spec, "-o", str(output), *options)
    assert result.code == 0, result.output
    assert f"wrote {output}" in result.stdout
    return output.read_text()


def _parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]], list[str]]:
    """Nodes (name -> label), edges (source, target, label) and cluster names of DOT text;
    fails on unbalanced braces or an edge to an undeclared node."""
    assert text.startswith("digraph ")
    assert text.count("{") == text.count("}")
    quoted = r'"((?:[^"\\]|\\.)*)"'
    nodes = dict(re.findall(rf"^\s*{quoted} \[label={quoted}\];$", text, re.MULTILINE))
    edges = re.findall(rf"^\s*{quoted} -> {quoted} \[label={quoted}\];$", text, re.MULTILINE)
    clusters = re.findall(rf"^\s*subgraph {quoted} \{{$", text, re.MULTILINE)
    for source, target, _ in edges:
        assert source in nodes and target in nodes, (source, target)
    return nodes, edges, clusters


def test_dot_has_a_node_per_layer_nested_clusters_and_shapes_on_edges(tmp_path: Path) -> None:
    nodes, edges, clusters = _parse_dot(_draw(tmp_path, "model.dot"))
    assert _layer_names(RESNET18) <= set(nodes)
    assert nodes["conv1"] == "conv1\\nconv2d\\n9,408 params"
    assert nodes["fc"] == "fc\\nlinear\\n513,000 params"
    assert ("image", "conv1", "[N, 3, 224, 224]") in edges
    assert ("fc", "output:fc", "[N, 1000]") in edges
    # The residual's skip connection: the max-pool output feeds the first block's add.
    assert ("max_pool2d_0", "layer1.0.add", "[N, 64, 56, 56]") in edges
    # 4 repeats, 8 basic-block calls, 3 projection shortcuts.
    assert len(clusters) == 15
    assert "cluster_layer2.0.downsample" in clusters  # torchvision's name for the projection shortcut
    text = (tmp_path / "model.dot").read_text()
    assert 'label="layer1 (repeat ×2)"' in text and 'label="layer2.0 (basic_block)"' in text


def test_svg_is_well_formed_with_one_node_per_layer(tmp_path: Path) -> None:
    root = ET.fromstring(_draw(tmp_path, "model.svg"))
    assert root.tag == f"{SVG}svg"
    drawn = {g.get("data-layer"): g for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("node")}
    assert _layer_names(RESNET18) <= set(drawn)
    assert drawn["layer4.1.conv2"].get("data-params") == "2359296"
    groups = {g.get("data-group") for g in root.iter(f"{SVG}g") if g.get("class") == "group"}
    assert {"layer1", "layer4.1", "layer3.0.downsample"} <= groups
    shapes = {t.text for t in root.iter(f"{SVG}text") if t.get("class") == "shape"}
    assert "[N, 512, 7, 7]" in shapes and "[N, 1000]" in shapes


def test_html_is_one_file_that_names_no_outside_resource(tmp_path: Path) -> None:
    html = _draw(tmp_path, "model.html")
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href)\s*=|@import|url\(\s*['"]?(?!#)""", html)
    assert "<script>" in html and 'data-layer="layer4.1.bn2"' in html


def test_ir_picture_draws_the_optimized_graph(tmp_path: Path) -> None:
    optimized, _, _ = _parse_dot(_draw(tmp_path, "ir.dot", "--ir"))
    unoptimized, _, _ = _parse_dot(_draw(tmp_path, "ir0.dot", "--ir", "-O", "0"))
    kinds = {label.split("\\n")[1] for label in optimized.values()}
    # -O2 folds every batch norm into the conv before it; -O0 keeps them.
    assert "batch_norm" not in kinds and "conv" in kinds
    assert any("\\nbatch_norm" in label for label in unoptimized.values())
    assert len(optimized) == 51 and len(unoptimized) == 71


def test_every_spec_draws(tmp_path: Path) -> None:
    for spec in ["specs/attention/gpt2_small.yaml", "specs/cnn/googlenet.yaml", "specs/recurrent/lstm.yaml"]:
        nodes, _, _ = _parse_dot(_draw(tmp_path, "model.dot", spec=spec))
        assert _layer_names(spec) <= set(nodes), spec


def test_unknown_picture_format_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("graph", RESNET18, "-o", str(tmp_path / "model.png"))
    assert result.code == 2
    assert "the suffix names the format, one of .html, .svg, .dot" in result.stderr
    assert "Traceback" not in result.output


# -- in a browser ---------------------------------------------------------------------------


def _chromium() -> str | None:
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


def _browse(page: str, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium installed (.ci/run installs Debian's chromium)")
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            *flags,
            page,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


class _VisibleNodes(HTMLParser):
    """The `data-layer` of every node in the view the page's script left visible."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.visible: list[str] = []
        self._in_visible_view = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "body":
            self.body = found
        elif tag == "svg" and "view" in (found.get("class") or ""):
            self._in_visible_view = "display: none" not in (found.get("style") or "")
        elif tag == "g" and self._in_visible_view and found.get("data-layer"):
            self.visible.append(found["data-layer"] or "")


def _rendered(tmp_path: Path, anchor: str = "") -> _VisibleNodes:
    html = tmp_path / "model.html"
    if not html.exists():
        _draw(tmp_path, "model.html")
    result = _browse(html.as_uri() + anchor, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = _VisibleNodes()
    parsed.feed(result.stdout)
    return parsed


def test_browser_renders_a_node_for_every_resnet18_layer(tmp_path: Path) -> None:
    page = _rendered(tmp_path)
    assert page.body.get("data-ready") == "true"  # the script ran
    assert page.body.get("data-depth") == "3"  # everything open
    assert _layer_names(RESNET18) <= set(page.visible)
    assert page.body.get("data-visible-layers") == str(len(page.visible)) == "71"


def test_browser_opens_the_folding_level_the_address_names(tmp_path: Path) -> None:
    page = _rendered(tmp_path, "#depth=0")
    assert page.body.get("data-depth") == "0"
    # The stem, the four stages folded, pooling, flatten and the classifier.
    assert page.visible == [
        "image",
        "conv1",
        "bn1",
        "relu_0",
        "max_pool2d_0",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "global_avg_pool_0",
        "flatten_0",
        "fc",
        "output:fc",
    ]


def test_browser_screenshot_is_a_picture(tmp_path: Path) -> None:
    _draw(tmp_path, "model.html")
    shot = tmp_path / "shot.png"
    page = (tmp_path / "model.html").as_uri() + "#depth=1"
    result = _browse(page, tmp_path, f"--screenshot={shot}", "--window-size=600,800")
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (600, 800)
    assert len(data) > 10_000  # boxes and text, not a blank page
