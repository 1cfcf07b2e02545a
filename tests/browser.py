"""Load a local HTML file in headless Chromium and report what the page did.

The page is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 in,
fd 4 out, NUL-separated JSON), which needs no port, no websocket library and no network. The
Network domain of the page's own session sees every request the page makes (data: URIs included)
and nothing of the browser's own background traffic, which a net log would mix in.

    python tests/browser.py REPORT.html SHOT.png     # prints the findings as JSON
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@dataclass
class PageReport:
    url: str
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, in order
    dialogs: list[str] = field(default_factory=list)  # alert/confirm/prompt messages: scripts that ran
    console: list[str] = field(default_factory=list)
    scripts: int = 0  # <script> elements in the final DOM
    text: str = ""  # document.body.innerText
    images: int = 0
    images_ok: int = 0  # decoded with a non-zero size
    height: int = 0
    screenshot: bytes = b""
    ran: list = field(default_factory=list)  # the values of load_page's `run` expressions

    def foreign_requests(self) -> list[str]:
        """Requests other than the page itself and inline data: URIs."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


class _Pipe:
    def __init__(self, exe: str, user_data_dir: str, width: int, height: int):
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()

        def child_fds():  # the protocol lives on fds 3 (commands in) and 4 (results out)
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        args = [exe, *FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(
            args, preexec_fn=child_fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(cmd_r)
        os.close(res_w)
        self._out = os.fdopen(cmd_w, "wb", buffering=0)
        self._in = os.fdopen(res_r, "rb", buffering=0)
        self._next = 0
        self.messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                self.messages.put(None)
                return
            buf += chunk
            *complete, buf = buf.split(b"\0")
            for raw in complete:
                self.messages.put(json.loads(raw))

    def _write(self, method: str, params: dict | None, session: str | None) -> int:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        return self._next

    def _receive(self, deadline: float, waiting_for: str) -> dict:
        try:
            msg = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"chromium: no {waiting_for} in time") from None
        if msg is None:
            raise RuntimeError("chromium closed the DevTools pipe")
        if msg.get("method") == "Page.javascriptDialogOpening":
            # a script ran alert(): note it (in events) and dismiss it, or the page never finishes loading
            self._write("Page.handleJavaScriptDialog", {"accept": True}, msg.get("sessionId"))
        return msg

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        wanted = self._write(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline, f"reply to {method}")
            if reply.get("id") == wanted:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = self._receive(deadline, method)
            self.events.append(e)
            if e.get("method") == method:
                return e

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def load_page(
    path,
    exe: str | None = None,
    width: int = 1280,
    height: int = 1000,
    full_page: bool = False,
    timeout: float = 60,
    run: tuple[str, ...] = (),
) -> PageReport:
    """The page loaded and what it did; `run`: JavaScript expressions evaluated in order after the
    load (clicks, typing), their values in `PageReport.ran`."""
    exe = exe or find_chromium()
    if not exe:
        raise FileNotFoundError("no chromium found (apt-get install chromium)")
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="kdbench-chromium-") as profile:
        pipe = _Pipe(exe, profile, width, height)
        try:
            targets = pipe.send("Target.getTargets")["targetInfos"]
            page = next((t for t in targets if t["type"] == "page"), None)
            target = page["targetId"] if page else pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for method in ("Network.enable", "Page.enable", "Runtime.enable"):
                pipe.send(method, session=session)
            pipe.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            pipe.events.clear()  # only what happens from the navigation on
            pipe.send("Page.navigate", {"url": url}, session=session)
            pipe.wait_for("Page.loadEventFired", timeout=timeout)
            time.sleep(0.3)  # let late requests (if any) be reported

            def js(expr: str):
                return pipe.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session)[
                    "result"
                ].get("value")

            rep = PageReport(url=url)
            rep.ran = [js(expr) for expr in run]
            rep.scripts = js("document.getElementsByTagName('script').length")
            rep.text = js("document.body ? document.body.innerText : ''")
            rep.images = js("document.images.length")
            rep.images_ok = js("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
            rep.height = js("document.documentElement.scrollHeight")
            shot = {"format": "png"}
            if full_page:
                shot.update(
                    captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": width, "height": rep.height, "scale": 1}
                )
            rep.screenshot = base64.b64decode(
                pipe.send("Page.captureScreenshot", shot, session=session, timeout=timeout)["data"]
            )
            for e in pipe.events:
                p = e.get("params", {})
                if e.get("method") == "Network.requestWillBeSent":
                    rep.requests.append(p["request"]["url"])
                elif e.get("method") in ("Network.webSocketCreated",):
                    rep.requests.append(p.get("url", "websocket"))
                elif e.get("method") == "Page.javascriptDialogOpening":
                    rep.dialogs.append(p.get("message", ""))
                elif e.get("method") == "Runtime.consoleAPICalled":
                    rep.console.append(" ".join(str(a.get("value", "")) for a in p.get("args", [])))
            return rep
        finally:
            pipe.close()


def blankness(png: bytes) -> dict:
    """How much of a screenshot is not background: share of pixels off the dominant colour, distinct colours."""
    import io

    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int32)
    packed = (img[..., 0] << 16 | img[..., 1] << 8 | img[..., 2]).ravel()
    _, counts = np.unique(packed, return_counts=True)
    return {"size": img.shape[:2], "colours": int(len(counts)), "off_background": float(1 - counts.max() / packed.size)}


if __name__ == "__main__":  # pragma: no cover - a manual check
    report = load_page(sys.argv[1], full_page=True)
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_bytes(report.screenshot)
    summary = {k: v for k, v in report.__dict__.items() if k not in ("screenshot", "text")}
    summary["foreign_requests"] = report.foreign_requests()
    summary["blankness"] = blankness(report.screenshot)
    print(json.dumps(summary, indent=2))
