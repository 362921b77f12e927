"""A real browser for the HTML tests: Debian's headless Chromium driven over the Chrome
DevTools Protocol with a small websocket client (the `websockets` package).

Why CDP and not `--dump-dom`/`--screenshot`: one browser serves every page of a test, and
the protocol reports exactly what the tests assert — uncaught exceptions and console
errors (Runtime, Log), every failed request (Network.loadingFailed), the images' decoded
sizes and the page's width on a phone-sized viewport (Runtime.evaluate) — instead of
scraping Chromium's log output. Playwright would need its own browser download.

    with Browser(tmp_path) as browser:
        report = browser.open(page_path, width=390)     # a phone
        assert report.problems() == []
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium): the HTML is tested in a real browser")
    return path


@dataclass
class PageReport:
    url: str
    errors: list[str] = field(default_factory=list)  # exceptions, console errors, failed loads
    images: list[tuple[str, int]] = field(default_factory=list)  # (url, naturalWidth)
    links: list[str] = field(default_factory=list)  # absolute hrefs
    scroll_width: int = 0
    viewport_width: int = 0
    screenshot: Path | None = None

    def broken_links(self) -> list[str]:
        """Links that do not resolve: a file:// target that does not exist, or anything not
        local (the pages must work offline)."""
        bad = []
        for href in self.links:
            url = urlparse(href)
            if url.scheme == "file":
                if not Path(unquote(url.path)).exists():
                    bad.append(href)
            elif href.startswith("#") or (url.scheme == "" and not url.netloc):
                continue
            else:
                bad.append(href)
        return bad

    def problems(self) -> list[str]:
        out = list(self.errors)
        out += [f"image did not load: {src}" for src, width in self.images if width <= 0]
        out += [f"image not local: {src}" for src, _ in self.images if not src.startswith("file://")]
        out += [f"link does not resolve: {href}" for href in self.broken_links()]
        if self.scroll_width > self.viewport_width:
            out.append(f"page wider than the screen: {self.scroll_width} > {self.viewport_width} px")
        return out


class Browser:
    def __init__(self, workdir: Path, timeout: float = 30.0):
        self.workdir, self.timeout = Path(workdir), timeout
        self.proc = None
        self.ws = None
        self._next = 0
        self.events: list[dict] = []

    # -- process and connection -----------------------------------------------------------

    def __enter__(self) -> Browser:
        from websockets.sync.client import connect

        exe = require_chromium()
        profile = self.workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.log = open(self.workdir / "chromium.log", "wb")
        self.proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while True:  # Chromium writes the port and the browser's path once it listens
            lines = port_file.read_text().split("\n") if port_file.is_file() else []
            if len(lines) >= 2 and lines[1]:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"chromium did not start: {(self.workdir / 'chromium.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        self.ws = connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_size=None, open_timeout=self.timeout)
        return self

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv(timeout=self.timeout))
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for ev in self.events:
                if ev.get("method") == method and ev.get("sessionId") == session:
                    self.events.remove(ev)
                    return ev
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {self.timeout} s")
            self.events.append(json.loads(self.ws.recv(timeout=self.timeout)))

    # -- pages ----------------------------------------------------------------------------

    def open(self, path: Path, width: int = 390, height: int = 844, mobile: bool = True,
             screenshot: Path | None = None) -> PageReport:
        """Load a local page at a viewport size; every image is made to load (lazy ones
        too); collect errors, images, links, page width and optionally a screenshot."""
        url = Path(path).resolve().as_uri()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable", session=session)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}, session)
            self.send("Page.navigate", {"url": url}, session)
            self.wait_for("Page.loadEventFired", session)
            facts = self.evaluate(session, """
                (async () => {
                  const imgs = [...document.images];
                  imgs.forEach(i => { i.loading = 'eager'; });
                  await Promise.all(imgs.map(i => i.complete ? null :
                      new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
                  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
                  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                  return {
                    images: imgs.map(i => [i.currentSrc || i.src, i.naturalWidth]),
                    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
                    external: [...document.querySelectorAll('[src],link[href],script')]
                        .map(e => e.src || e.href || 'inline script').filter(Boolean),
                    scrollWidth: document.documentElement.scrollWidth,
                    innerWidth: window.innerWidth,
                  };
                })()""")
            report = PageReport(url, images=[tuple(i) for i in facts["images"]], links=facts["links"],
                                scroll_width=facts["scrollWidth"], viewport_width=facts["innerWidth"])
            report.errors += [f"script or resource element: {e}" for e in facts["external"]
                              if not e.startswith("file://")]
            if screenshot is not None:
                shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}, session)
                import base64

                screenshot.write_bytes(base64.b64decode(shot["data"]))
                report.screenshot = screenshot
            report.errors += self._errors(session)
            return report
        finally:
            self.send("Target.closeTarget", {"targetId": target})

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate: {result['exceptionDetails']}")
        return result["result"]["value"]

    def _errors(self, session: str) -> list[str]:
        out = []
        for ev in [e for e in self.events if e.get("sessionId") == session]:
            method, params = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                out.append(f"failed to load: {params.get('errorText')} (request {params.get('requestId')})")
        self.events = [e for e in self.events if e.get("sessionId") != session]
        return out


def png_ok(path: Path, width: int) -> bool:
    """A real PNG of the expected width, and not one flat colour (the page drew something)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        extrema = im.convert("L").getextrema()
        return im.width == width and extrema[1] - extrema[0] > 32


__all__ = ["Browser", "PageReport", "chromium_path", "png_ok", "require_chromium"]
