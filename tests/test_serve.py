"""``xnor-edge serve`` as a subprocess on 127.0.0.1, driven by a real headless browser
(Debian's chromium + chromedriver through Selenium) and by plain HTTP clients.

The camera is a copy of the sample video (looped by the server); the model's labels and
name hold HTML and terminal escapes, which must reach the page as text only.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_classifier

import xnor_edge
from xnor_edge import cli

pytest.importorskip("aiohttp", reason="aiohttp is not installed (the [test] extra has it)")
from xnor_edge.camera import FrameSource  # noqa: E402
from xnor_edge.serve import CameraWorker, LiveState, clean_text, decode_upload, is_loopback  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "build" / "test-artifacts"  # ignored by git; CI keeps the screenshots there
TOKEN = "s3cret-token"
LABELS = ["<img src=x onerror=alert(1)>", "dog\x1b[31m red", "bird\u202eevil", "<b>frog</b> & co"]
NAME = "tiny\x1b]0;pwned\x07"


def wait_until(pred, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


class Server:
    def __init__(self, tmp: Path, *extra: str) -> None:
        self.video = tmp / "cam.avi"
        shutil.copy(xnor_edge.sample_path("cat.avi"), self.video)
        self.model = tmp / "hostile.xnor"
        self.model.write_bytes(tiny_classifier(labels=LABELS, name=NAME))
        argv = [sys.executable, "-m", "xnor_edge", "serve", "--camera", str(self.video)]
        argv += ["--model", str(self.model), "--port", "0", "--top-k", "3", *extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.banner = self.proc.stdout.readline()  # printed once the port is bound
        assert self.banner.startswith("xnor-edge: serving http://127.0.0.1:"), (
            self.banner + self.proc.stderr.read()
        )
        self.port = int(self.banner.split("http://127.0.0.1:")[1].split("/")[0])
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body=None, headers=None, token: str | None = TOKEN):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, r.getheader("Content-Type") or "", data
        finally:
            conn.close()

    def json(self, path: str, **kw):
        status, ctype, data = self.request("GET", path, **kw)
        assert ctype.startswith("application/json"), (status, ctype, data[:200])
        return status, json.loads(data)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve"), "--token", TOKEN)
    wait_until(lambda: s.json("/api/status")[1]["state"] == "running", 30, "the camera to run")
    yield s
    rc = s.stop()
    err = s.proc.stderr.read()
    assert rc == 0 and "Traceback" not in err, err


def test_banner_strips_terminal_escapes(server):
    assert "\x1b" not in server.banner and "\x07" not in server.banner
    assert "model tiny]0;pwned" in server.banner and "a token is required" in server.banner


def test_api_answers(server):
    status, s = server.json("/api/status")
    assert status == 200 and s["state"] == "running" and s["error"] is None and s["frames"] > 0
    assert s["model"]["labels"] == LABELS and s["model"]["kernel_isa"] == xnor_edge.kernel_isa()
    assert s["model"]["name"] == NAME and s["camera"].endswith("cam.avi") and s["model"]["card"] is None
    status, r = server.json("/api/results")
    assert status == 200 and len(r["top"]) == 3 and r["top"][0]["label"] in LABELS
    assert r["latency_ms"] > 0 and r["source"].endswith("cam.avi")
    status, models = server.json("/api/models")
    assert status == 200 and "default" in {m["name"] for m in models}
    # Server-Sent Events: the state, then results with increasing ids.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", f"/api/results/stream?token={TOKEN}")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    events, ids = [], []
    while len(ids) < 3:
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            events.append(line[7:])
        elif line.startswith("id: "):
            ids.append(int(line[4:]))
    conn.close()
    assert events[0] == "status" and "result" in events and ids == sorted(ids) and len(set(ids)) == 3


def test_token_is_required_and_checked(server):
    assert server.request("GET", "/api/status", token=None)[0] == 401
    assert server.request("GET", "/api/status", token="s3cret-tokeN")[0] == 403
    assert server.request("GET", "/?token=wrong", token=None)[0] == 403
    assert server.request("GET", "/video.mjpg?token=", token=None)[0] == 403
    assert server.request("GET", f"/api/status?token={TOKEN}", token=None)[0] == 200
    assert server.request("GET", "/static/app.js", token=None)[0] == 200  # public code, no data


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def test_uploads(server):
    cat = xnor_edge.sample_path("cat.jpg").read_bytes()
    status, ctype, data = server.request("POST", "/api/classify?top_k=2", cat, {"Content-Type": "image/jpeg"})
    r = json.loads(data)
    assert status == 200 and len(r["top"]) == 2 and (r["width"], r["height"]) == (224, 149)
    with xnor_edge.load(server.model) as m:
        want = m.classify(str(xnor_edge.sample_path("cat.jpg")), top_k=2)
    assert [t["label"] for t in r["top"]] == [label for label, _ in want]
    # multipart, as the page's form sends it
    body = (
        b"--XB\r\nContent-Disposition: form-data; name=image; filename=cat.jpg\r\n"
        b"Content-Type: image/jpeg\r\n\r\n" + cat + b"\r\n--XB--\r\n"
    )
    status, _, data = server.request(
        "POST", "/api/classify", body, {"Content-Type": "multipart/form-data; boundary=XB"}
    )
    assert status == 200 and len(json.loads(data)["top"]) == 3
    for bad, msg in [
        (b"not an image", "not an image"),
        (b"", "empty upload"),
        (cat[: len(cat) // 3], "cannot decode"),
        (_png_header_only(100_000, 100_000), "over the limit"),  # a decompression bomb's header
    ]:
        status, ctype, data = server.request("POST", "/api/classify", bad)
        assert status == 400 and ctype.startswith("application/json"), (status, data[:200])
        assert msg in json.loads(data)["error"]
    assert server.request("POST", "/api/classify?top_k=99", cat)[0] == 400


def test_50mb_upload_is_refused_cleanly(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    size = 50 * (1 << 20)
    conn.putrequest("POST", "/api/classify")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Type", "image/jpeg")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    chunk = b"\xff" * (1 << 20)
    try:
        for _ in range(size // len(chunk)):
            conn.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may stop reading once it has answered
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status == 413 and "limit is 10485760 bytes" in body["error"]
    # Without a Content-Length (chunked), the limit holds as the body arrives.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(
        "POST",
        "/api/classify",
        body=iter([chunk] * 12),
        headers={"Authorization": f"Bearer {TOKEN}"},
        encode_chunked=True,
    )
    r = conn.getresponse()
    assert r.status == 413 and "limit" in json.loads(r.read())["error"]
    conn.close()
    assert server.json("/api/status")[1]["state"] == "running"


def test_200_concurrent_requests(server):
    import aiohttp

    async def main() -> list[int]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        timeout = aiohttp.ClientTimeout(total=60)
        conn = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=conn) as session:

            async def one(i: int) -> int:
                path = ("/api/status", "/api/results", "/api/models", "/")[i % 4]
                async with session.get(server.url + path) as r:
                    await r.read()
                    return r.status

            return await asyncio.gather(*(one(i) for i in range(200)))

    t0 = time.monotonic()
    statuses = asyncio.run(main())
    assert statuses == [200] * 200, sorted(set(statuses))
    assert time.monotonic() - t0 < 60
    assert server.proc.poll() is None and server.json("/api/status")[1]["state"] == "running"


# --------------------------------------------------------------- the browser


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver" if os.path.exists("/usr/lib/chromium/chromedriver") else None
    )
    if not browser or not driver:
        pytest.skip(
            "chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver; .ci/run does)"
        )
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1100,800",
    ):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


@pytest.fixture(scope="module")
def browser():
    d = _chrome()
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def test_page_in_a_real_browser(server, browser):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{server.url}/?token={TOKEN}")
    js = browser.execute_script
    wait_until(lambda: int(js("return document.body.dataset.results || 0")) >= 5, 30, "results on the page")
    video = browser.find_element(By.ID, "video")
    wait_until(lambda: js("return arguments[0].naturalWidth", video) > 0, 20, "a video frame")
    assert video.size["width"] > 0 and video.size["height"] > 0
    shots = {video.screenshot_as_png}
    wait_until(lambda: shots.add(video.screenshot_as_png) or len(shots) >= 3, 20, "the video to change", 0.3)
    # Labels: drawn over the video as text; the HTML in them never becomes elements.
    texts = js("return [...document.querySelectorAll('#labels li')].map((li) => li.textContent)")
    assert len(texts) == 3
    shown = [clean_text(label) for label in LABELS]  # control and bidi characters stripped
    assert all(any(t.startswith(label + " ") for label in shown) for t in texts), texts
    assert "dog[31m red" in browser.find_element(By.ID, "model").text
    assert js("return document.querySelectorAll('#labels *:not(li), #model *:not(dt):not(dd)').length") == 0
    frames = {browser.find_element(By.ID, "frame").text}
    wait_until(
        lambda: frames.add(browser.find_element(By.ID, "frame").text) or len(frames) >= 3, 10, "frames"
    )
    assert browser.find_element(By.ID, "state").text == "running"
    assert xnor_edge.kernel_isa() in browser.find_element(By.ID, "model").text
    assert js("return document.getElementById('chart').width") > 0
    # an upload through the page's form
    browser.find_element(By.ID, "file").send_keys(str(xnor_edge.sample_path("cat.jpg")))
    browser.find_element(By.CSS_SELECTOR, "#upload button").click()
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#upload-result li")) == 3, 10, "upload")
    browser.save_screenshot(str(ARTIFACTS / "serve-page.png"))

    # The camera vanishes: the page and /api/status show the error, then it comes back.
    gone = server.video.with_suffix(".gone")
    server.video.rename(gone)
    try:
        wait_until(lambda: browser.find_element(By.ID, "state").text == "error", 20, "the error state")
        err = browser.find_element(By.ID, "error")
        assert err.is_displayed() and "no such camera device or video file" in err.text
        status = server.json("/api/status")[1]
        assert status["state"] == "error" and "no such camera" in status["error"]
        browser.save_screenshot(str(ARTIFACTS / "serve-camera-error.png"))
    finally:
        gone.rename(server.video)
    before = int(js("return document.body.dataset.results"))
    wait_until(lambda: browser.find_element(By.ID, "state").text == "running", 20, "recovery")
    wait_until(lambda: int(js("return document.body.dataset.results")) > before + 3, 10, "results again")
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert server.json("/api/status")[1]["reopens"] > 0


# ------------------------------------------------ without a server or browser


def test_non_loopback_host_needs_a_token(tmp_path, capsys):
    for host in ("0.0.0.0", "::", "192.168.1.5", "camera.local", ""):
        assert not is_loopback(host)
        assert cli.main(["serve", "--host", host, "--port", "0"]) == 2  # refused before binding
        assert "pass --token or --token-file" in capsys.readouterr().err
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "localhost", "[::1]"))
    empty = tmp_path / "token"
    empty.write_text("\n")
    assert cli.main(["serve", "--token-file", str(empty)]) == 2
    assert "token file is empty" in capsys.readouterr().err


def test_port_in_use_is_one_error_line(tiny_model_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        rc = cli.main(
            ["serve", "--camera", "/no/such.avi", "--model", str(tiny_model_path), "--port", str(port)]
        )
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("xnor-edge: error: ") and "address already in use" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_extra_names_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    assert cli.main(["serve", "--port", "0"]) == 1
    assert 'pip install "xnor-edge[serve]"' in capsys.readouterr().err


def test_clean_text_and_decode_limits():
    assert clean_text("a\x1b[31mb\x07\nc\u202ed\u2028") == "a[31mbcd"
    with pytest.raises(ValueError, match="over the limit"):
        decode_upload(_png_header_only(5000, 5000), max_pixels=1_000_000)


class FailingSource(FrameSource):
    """A live camera that delivers frames, fails every read while `down`, then delivers again."""

    def __init__(self) -> None:
        self.name, self.live, self.down, self.n = "fake", True, False, 0

    def read(self):
        if self.down:
            return None
        self.n += 1
        time.sleep(0.01)
        return np.full((16, 16, 3), self.n % 256, np.uint8)


def test_worker_reports_a_failing_camera_and_recovers(tiny_model_path):
    src, state, seen = FailingSource(), LiveState(), []
    with xnor_edge.load(tiny_model_path) as model:
        w = CameraWorker(model, src, state, top_k=2, backoff=(0.05, 0.2), listeners=[seen.append])
        w.start()
        try:
            wait_until(lambda: state.snapshot()["state"] == "running", 10, "frames")
            src.down = True
            wait_until(lambda: state.snapshot()["state"] == "error", 10, "the error")
            assert "no frame after 5 retries" in state.snapshot()["error"] and None in seen
            frames = state.frames
            src.down = False
            wait_until(
                lambda: state.snapshot()["state"] == "running" and state.frames > frames, 10, "recovery"
            )
        finally:
            w.stop()
    assert not w.is_alive() and state.reopens >= 1


def test_model_card_beside_the_file(tiny_model_path):
    from xnor_edge.serve import model_card

    tiny_model_path.with_suffix(".md").write_text("# tiny\nA card.\n")
    with xnor_edge.load(tiny_model_path) as model:
        card = model_card(model)
    assert card["card"] == "# tiny\nA card.\n" and card["labels"] == [f"label{i}" for i in range(4)]
    assert card["kernel_isa"] == xnor_edge.kernel_isa() and card["macs"] > 0
