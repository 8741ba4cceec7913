"""A minimal headless-Chromium driver over the DevTools protocol (CDP), for the dashboard test.

Why not selenium or playwright: neither is in the project's environment, and
playwright downloads its own browser. Chromium speaks CDP over a websocket, and
websocket-client is installed, so a few CDP methods (navigate, evaluate JavaScript,
insert text, key and mouse events, screenshot) are all a real end-to-end test needs.

The browser is Debian's `chromium` package (/usr/bin/chromium). Nothing is installed
here: a missing browser is reported with the command that installs it.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
import websocket

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = (
    "Debian's Chromium is required for the dashboard's browser test and is missing at "
    f"{CHROMIUM}. Install it (as root): apt-get update && apt-get install -y chromium "
    "chromium-driver  (scripts/setup.sh does this on Debian/Ubuntu)."
)
# The flags of a headless Chromium on a machine without network or GPU: background
# networking off, or Chromium keeps trying (and failing) to reach Google's hosts.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


class BrowserError(RuntimeError):
    """Chromium did not start, a CDP call failed, or a wait timed out."""


class Browser:
    """One headless Chromium process and a CDP session on its first page."""

    def __init__(self, profile_dir: Path, width: int = 1400, height: int = 1000) -> None:
        self.profile_dir = profile_dir
        self.width = width
        self.height = height
        self._process: subprocess.Popen[bytes] | None = None
        self._ws: websocket.WebSocket | None = None
        self._next_id = 0
        self.log_path = profile_dir.parent / f"{profile_dir.name}.chromium.log"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 30.0) -> None:
        """Start Chromium, wait for its DevTools port and attach to the page target."""
        if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
            raise BrowserError(INSTALL_HINT)
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(CHROMIUM),
                    *FLAGS,
                    f"--user-data-dir={self.profile_dir}",
                    f"--window-size={self.width},{self.height}",
                    "about:blank",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        port = self._devtools_port(timeout_s)
        targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise BrowserError(f"Chromium exposes no page target: {targets}")
        self._ws = websocket.create_connection(
            pages[0]["webSocketDebuggerUrl"], timeout=timeout_s, suppress_origin=True
        )
        self.send("Page.enable")
        self.send("Runtime.enable")
        self._viewport(self.height)

    def _devtools_port(self, timeout_s: float) -> int:
        """The port Chromium writes to <profile>/DevToolsActivePort once it listens."""
        active = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrowserError(
                    f"Chromium exited with code {self._process.returncode}; log "
                    f"{self.log_path}:\n{self.log_path.read_text(errors='replace')[-3000:]}"
                )
            if active.is_file():
                first = active.read_text().splitlines()[:1]
                if first and first[0].strip().isdigit():
                    return int(first[0])
            time.sleep(0.05)
        raise BrowserError(f"Chromium wrote no DevToolsActivePort within {timeout_s}s")

    def close(self) -> None:
        """Close the session and end the Chromium process this object started."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ protocol

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One CDP command; returns its result (events received meanwhile are dropped)."""
        if self._ws is None:
            raise BrowserError("the browser is not started")
        self._next_id += 1
        call_id = self._next_id
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") != call_id:
                continue
            if "error" in message:
                raise BrowserError(f"CDP {method} failed: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"JavaScript failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    # ------------------------------------------------------------------ actions

    def navigate(self, url: str) -> None:
        """Load `url` in the page."""
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"navigation to {url} failed: {result['errorText']}")

    def text(self) -> str:
        """The page's visible text (document.body.innerText)."""
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def wait_for(self, expression: str, timeout_s: float = 30.0, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        value: Any = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise BrowserError(
            f"timed out after {timeout_s}s waiting for {what or expression}; page text:\n"
            f"{self.text()[-3000:]}"
        )

    def wait_for_text(self, needle: str, timeout_s: float = 30.0) -> str:
        """Wait until the page's visible text contains `needle`; returns the text."""
        self.wait_for(
            f"document.body && document.body.innerText.includes({json.dumps(needle)})",
            timeout_s,
            what=repr(needle),
        )
        return self.text()

    def wait_for_selector(self, selector: str, timeout_s: float = 30.0) -> None:
        """Wait until an element matching the CSS `selector` exists."""
        self.wait_for(
            f"document.querySelector({json.dumps(selector)}) !== null", timeout_s, what=selector
        )

    def center_of(self, selector: str, text: str | None = None) -> tuple[float, float]:
        """Viewport coordinates of the middle of the first element matching `selector`
        (and, with `text`, whose visible text is exactly `text`), scrolled into view."""
        box = self.evaluate(
            f"""(() => {{
                const text = {json.dumps(text)};
                const el = Array.from(document.querySelectorAll({json.dumps(selector)}))
                    .find(e => text === null || e.innerText.trim() === text);
                if (!el) return null;
                el.scrollIntoView({{block: 'center'}});
                const r = el.getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2];
            }})()"""
        )
        if not box:
            raise BrowserError(f"no element matches {selector!r} with text {text!r}")
        return float(box[0]), float(box[1])

    def click(self, selector: str, text: str | None = None) -> None:
        """A real mouse click (pressed and released) in the middle of the element."""
        x, y = self.center_of(selector, text)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        """Click the field, select what it holds, and type `text` over it."""
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        self.send("Input.insertText", text=text)

    def press_enter(self) -> None:
        """Enter, as a key press in the focused element."""
        common = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        self.send("Input.dispatchKeyEvent", type="keyDown", text="\r", **common)
        self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    def screenshot(
        self, path: Path, full_page: bool = True, scroller: str = '[data-testid="stMain"]'
    ) -> Path:
        """Save a PNG of the page. full_page: the viewport is first stretched to the height
        of the page's scrolling container `scroller` (Streamlit scrolls an inner element,
        not the document, so Chromium's captureBeyondViewport alone would cut it off)."""
        height = self.height
        if full_page:
            measured = self.evaluate(
                f"""(() => {{
                    const main = document.querySelector({json.dumps(scroller)});
                    const doc = document.documentElement.scrollHeight;
                    if (!main) return doc;
                    return Math.max(doc, main.scrollHeight + main.getBoundingClientRect().top);
                }})()"""
            )
            height = max(self.height, min(int(measured), 8000))
            self._viewport(height)
            time.sleep(0.5)  # let the page lay out at the new size
        try:
            data = self.send("Page.captureScreenshot", format="png")["data"]
        finally:
            if height != self.height:
                self._viewport(self.height)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def _viewport(self, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
