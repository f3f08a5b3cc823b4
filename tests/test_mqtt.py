"""MQTT fleet events against a real broker (Debian's mosquitto, started here on a
free loopback port): order and JSON, a broker restart mid-run, no broker at all."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import tiny_classifier

import xnor_edge
from xnor_edge import cli

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (the [test] extra has it)")
from xnor_edge.mqtt import MqttPublisher, parse_url  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
needs_broker = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto is not installed (apt-get install mosquitto; .ci/run does)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1:port with persistence, so a restart keeps sessions."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {tmp}/\nlog_dest stderr\n"
            # as root, mosquitto would switch to the user "mosquitto", which cannot write here
            f"user {getpass.getuser()}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "ab")
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None, (self.dir / "log").read_text()
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves the persistent sessions
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A persistent-session QoS 1 subscriber: the broker keeps its messages across a restart."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[dict] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"xe-test-sub-{os.getpid()}", clean_session=False
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK from the broker"

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append(json.loads(msg.payload))

    def wait_for(self, n: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    break
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def result(i: int, label: str = "cat", p: float = 0.9) -> dict:
    return {"frame": i, "top": [{"label": label, "p": p}, {"label": "dog", "p": 1 - p}]}


def test_parse_url():
    assert parse_url("mqtt://broker:1884/a/b") == ("broker", 1884, "a/b", None, None)
    assert parse_url("mqtt://u:p%40ss@h/t") == ("h", 1883, "t", "u", "p@ss")
    for bad in ("http://h/t", "mqtt://h", "mqtt://h/", "mqtt:///t", "mqtt://h/a/#", "mqtt://h:99999/t"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_modes_filter_without_blocking():
    port = free_port()  # nothing listens: connecting happens in paho's thread, submit never waits
    with MqttPublisher(f"mqtt://127.0.0.1:{port}/t", mode="change", min_confidence=0.5, queue_size=3) as pub:
        t0 = time.perf_counter()
        labels = [
            ("a", 0.9),
            ("a", 0.8),
            ("b", 0.9),
            ("b", 0.9),
            ("c", 0.3),
            ("a", 0.7),
            ("d", 0.6),
            ("e", 0.6),
        ]
        queued = [pub.submit(result(i, label, p)) for i, (label, p) in enumerate(labels)]
        assert time.perf_counter() - t0 < 0.1
        assert queued == [True, False, True, False, False, True, True, True]
        st = pub.stats
        assert (st.submitted, st.skipped, st.queued, st.dropped, st.sent) == (8, 3, 3, 2, 0)
        assert not st.connected
        wait = time.monotonic() + 5
        while pub.stats.last_error is None and time.monotonic() < wait:
            time.sleep(0.02)
        assert pub.stats.last_error == f"cannot reach the broker at 127.0.0.1:{port}"
    with pytest.raises(ValueError, match="--mqtt-mode"):
        MqttPublisher("mqtt://h/t", mode="sometimes")


@needs_broker
def test_messages_arrive_in_order_with_expected_json(broker):
    sub = Subscriber(broker.port, "xe/cam1")
    try:
        with MqttPublisher(f"mqtt://127.0.0.1:{broker.port}/xe/cam1", qos=1) as pub:
            for i in range(50):
                pub.submit({**result(i), "source": "cam1", "latency_ms": 1.5})
            assert pub.flush(10)
            assert pub.stats.sent == 50 and pub.stats.connected
        got = sub.wait_for(50, 10)
    finally:
        sub.close()
    assert [m["seq"] for m in got] == list(range(1, 51))
    assert [m["frame"] for m in got] == list(range(50))
    m = got[0]
    assert m["top"] == [{"label": "cat", "p": 0.9}, {"label": "dog", "p": pytest.approx(0.1)}]
    assert m["source"] == "cam1" and m["latency_ms"] == 1.5 and abs(m["time"] - time.time()) < 60


@needs_broker
def test_broker_restart_loses_at_most_the_queue(broker):
    """A result every 10 ms for 4 s; the broker is down from 1.0 s to 2.5 s. The producer
    never waits; what the bounded queue could not hold is counted, the rest arrives, in order."""
    sub = Subscriber(broker.port, "xe/restart")
    queue = 30
    pub = MqttPublisher(
        f"mqtt://127.0.0.1:{broker.port}/xe/restart", qos=1, queue_size=queue, reconnect_delay=(1, 1)
    )
    try:
        assert sub.wait_for(0, 0) == []
        deadline = time.monotonic() + 5
        while not pub.stats.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        n, worst = 400, 0.0
        t_start = time.monotonic()
        for i in range(n):
            if i == 100:
                broker.stop()
            if i == 250:
                broker.start()
            t0 = time.perf_counter()
            pub.submit(result(i))
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(max(0.0, t_start + (i + 1) * 0.01 - time.monotonic()))
        assert worst < 0.05, f"submit blocked for {worst * 1e3:.0f} ms"
        assert pub.flush(15), pub.stats
        st = pub.stats
        got = sub.wait_for(n - st.dropped, 15)
    finally:
        pub.close()
        sub.close()
    seqs = [m["seq"] for m in got]
    unique = list(dict.fromkeys(seqs))  # QoS 1 may deliver a message twice
    assert unique == sorted(unique), "messages arrived out of order"
    lost = n - len(unique)
    assert st.dropped > 0 and st.connects >= 2, st
    missing = sorted(set(range(1, n + 1)) - set(unique))
    assert lost == st.dropped, (lost, st, missing[:3], missing[-3:])  # every loss was counted
    gaps = [(a, b) for a, b in zip(unique, unique[1:]) if b != a + 1]
    assert len(gaps) == 1 and unique[0] == 1 and unique[-1] == n, gaps  # one run of the oldest...
    assert gaps[0][1] + queue <= 401, gaps  # ...and the newest `queue` of the outage were kept


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xnor_edge", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "tiny.xnor"
    p.write_bytes(tiny_classifier())
    return p


@needs_broker
def test_classify_publishes_every_frame(broker, tiny_model):
    sub = Subscriber(broker.port, "xe/classify")
    try:
        cat = str(xnor_edge.sample_path("cat.avi"))
        url = f"mqtt://127.0.0.1:{broker.port}/xe/classify"
        r = _cli(
            "classify",
            "--camera",
            cat,
            "--model",
            str(tiny_model),
            "--json",
            "--mqtt",
            url,
            "--mqtt-qos",
            "1",
        )
        assert r.returncode == 0, r.stderr
        lines = [json.loads(s) for s in r.stdout.splitlines() if s.startswith('{"frame"')]
        got = sub.wait_for(len(lines), 10)
    finally:
        sub.close()
    assert len(lines) == 40 and "warning" not in r.stderr
    assert [m["frame"] for m in got] == [rec["frame"] for rec in lines]
    assert [m["top"] for m in got] == [rec["top"] for rec in lines]
    assert got[0]["source"] == cat and got[0]["model"] == "tiny"


def test_classify_without_a_broker_never_blocks(tiny_model, tmp_path):
    cat = str(xnor_edge.sample_path("cat.avi"))
    config = tmp_path / "settings.yaml"  # the options also come from a config file
    config.write_text(f"mqtt: mqtt://127.0.0.1:{free_port()}/xe/none\nmqtt_qos: 1\nmqtt_queue: 10\n")
    t0 = time.monotonic()
    r = _cli("classify", "--camera", cat, "--model", str(tiny_model), "--json", "--config", str(config))
    assert time.monotonic() - t0 < 30
    assert r.returncode == 0, r.stderr
    assert sum(s.startswith('{"frame"') for s in r.stdout.splitlines()) == 40
    assert "warning: mqtt: 40 of 40 messages not delivered" in r.stderr, r.stderr
    assert "(30 dropped from the full queue): cannot reach the broker at 127.0.0.1:" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_missing_extra_names_it(monkeypatch, capsys, tiny_model):
    monkeypatch.setitem(sys.modules, "paho", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    rc = cli.main(["classify", "--model", str(tiny_model), "--mqtt", "mqtt://127.0.0.1/t"])
    assert rc == 1
    assert 'pip install "xnor-edge[mqtt]"' in capsys.readouterr().err


@needs_broker
def test_serve_publishes_and_reports_mqtt(broker, tiny_model):
    pytest.importorskip("aiohttp", reason="aiohttp is not installed (the [test] extra has it)")
    sub = Subscriber(broker.port, "xe/serve")
    cat = str(xnor_edge.sample_path("cat.avi"))
    url = f"mqtt://127.0.0.1:{broker.port}/xe/serve"
    argv = [sys.executable, "-m", "xnor_edge", "serve", "--camera", cat, "--model", str(tiny_model)]
    proc = subprocess.Popen([*argv, "--port", "0", "--mqtt", url], stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        port = int(banner.split("http://127.0.0.1:")[1].split("/")[0])
        got = sub.wait_for(10, 20)
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as r:
            status = json.loads(r.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
        sub.close()
    assert rc == 0
    assert len(got) >= 10 and [m["seq"] for m in got] == sorted(m["seq"] for m in got)
    assert got[0]["source"] == cat and got[0]["model"] == "tiny" and len(got[0]["top"]) == 4
    assert status["mqtt"]["connected"] and status["mqtt"]["sent"] > 0
