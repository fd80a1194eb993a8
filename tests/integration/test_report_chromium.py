"""`repx report` of the default template's run, opened in a real headless Chromium.

The page must render (a screenshot of the requested size), its images must load (checked from
inside the browser: every `<img>` decoded with a size), and it must make no request outside
itself: Chromium's network log lists every URL asked for, and a canary request of the harness
page shows that the log catches them. Chromium runs in a network namespace of its own with
nothing but loopback, so no request can leave the machine.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from runlab import build_lab, repx

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (tools/setup.sh)"),
]

# Headless, as root, and as quiet as flags make it (its updater still tries: see _page_requests).
CHROMIUM = [
    "unshare",
    "--net",
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--allow-file-access-from-files",
    "--virtual-time-budget=10000",
]

# A page beside the report that loads it in a frame and writes what the browser made of it
# into its own DOM, which `--dump-dom` prints. Its canary image is a request the network log
# must show (TEST-NET-1: never routed).
CANARY = "http://192.0.2.1/canary.png"
HARNESS = """<!DOCTYPE html>
<html><body><pre id="seen">pending</pre><img src="%s" alt=""><iframe id="report" src="report.html"></iframe>
<script>
document.getElementById("report").onload = function () {
  var doc = this.contentDocument;
  var images = Array.prototype.map.call(doc.images, function (i) {
    return { alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight };
  });
  document.getElementById("seen").textContent = JSON.stringify({
    title: doc.title,
    images: images,
    svgs: doc.querySelectorAll("svg").length,
    tables: doc.querySelectorAll("table").length
  });
};
</script></body></html>
"""


def _chromium(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*CHROMIUM, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _page_requests(netlog: Path) -> set[str]:
    """The URLs the pages (file:// documents) asked the network for; Chromium's own
    requests (its updater, whatever the flags) have no origin as initiator."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start and e["params"].get("initiator") == "file://"
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("report")
    lab = build_lab("template")
    ran = repx("run", "--lab", lab, "--base", where / "base")
    assert ran.returncode == 0, ran.stderr
    page = where / "report.html"
    made = repx("report", "--lab", lab, "--base", where / "base", "-o", page)
    assert made.returncode == 0, made.stderr
    return page


def test_the_report_renders_with_its_images_and_requests_nothing_outside(report):
    (report.parent / "harness.html").write_text(HARNESS % CANARY)
    netlog = report.parent / "net.json"
    dom = _chromium(
        f"--log-net-log={netlog}",
        "--dump-dom",
        (report.parent / "harness.html").as_uri(),
        cwd=report.parent,
    )
    match = re.search(r'<pre id="seen">(.*?)</pre>', dom.stdout, re.S)
    assert match is not None, dom.stdout[-3000:]
    seen = json.loads(html.unescape(match[1]))
    assert "my-experiment" in seen["title"]
    # the topology (inline SVG), the parameter and result tables, and the plot, decoded
    assert seen["svgs"] >= 1 and seen["tables"] >= 2
    assert [i["alt"] for i in seen["images"]] == ["plot.png"]
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in seen["images"])
    # the log saw the harness's canary, and nothing else: the report asks for nothing
    assert _page_requests(netlog) == {CANARY}


def test_the_report_screenshot_has_the_requested_size(report):
    shot = report.parent / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri(), cwd=report.parent)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1200, 1600)
    # a blank page of that size compresses to a few KiB; text, tables and the plot do not
    assert len(data) > 30_000
