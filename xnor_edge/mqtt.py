"""Fleet events over MQTT: one JSON message per classification result.

    pub = MqttPublisher("mqtt://broker.local:1883/cameras/door", mode="change")
    pub.submit(result)        # never blocks; see below
    pub.close()

``submit`` only appends to a bounded queue (the oldest message is dropped and
counted when it is full), so a slow or lost broker never blocks classification
and never grows memory. A sender thread hands queued messages to paho-mqtt
only while connected, with at most ``max_pending`` unacknowledged at a time;
paho's network thread (``loop_start``) reconnects with backoff
(``reconnect_delay_set``) and resends unacknowledged QoS 1/2 messages.
Availability follows the usual fleet convention: ``<topic>/status`` holds a
retained "online", and the broker publishes the will "offline" if the
connection is lost.

Needs the ``mqtt`` extra (``pip install "xnor-edge[mqtt]"``).
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["MODES", "MqttPublisher", "MqttStats", "parse_url"]

MODES = ("all", "change")
DEFAULT_PORT = 1883


@dataclass
class MqttStats:
    submitted: int = 0  # results handed to submit()
    skipped: int = 0  # filtered out by mode / min_confidence
    queued: int = 0  # waiting in the bounded queue now
    dropped: int = 0  # pushed out of the full queue (oldest first)
    sent: int = 0  # handed to paho and written (QoS 0) or acknowledged (QoS 1/2)
    connected: bool = False
    connects: int = 0  # successful connections (1 + reconnects)
    last_error: str | None = None


def parse_url(url: str) -> tuple[str, int, str, str | None, str | None]:
    """'mqtt://[user[:password]@]host[:port]/topic' -> (host, port, topic, user, password)."""
    u = urlsplit(url)
    if u.scheme != "mqtt":
        raise ValueError(f"--mqtt must look like mqtt://host[:port]/topic, got {url!r}")
    try:
        port = u.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"--mqtt {url!r}: bad port") from None
    topic = unquote(u.path[1:]) if u.path.startswith("/") else ""
    if not u.hostname or not topic:
        raise ValueError(f"--mqtt {url!r}: needs a host and a topic, as in mqtt://host:1883/cameras/door")
    if any(c in topic for c in "+#\0") or "#" in url or u.query:
        raise ValueError(f"--mqtt {url!r}: a topic to publish to cannot hold '+', '#' or NUL")
    user = unquote(u.username) if u.username else None
    password = unquote(u.password) if u.password else None
    return u.hostname, port, topic, user, password


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ImportError(
            'MQTT needs paho-mqtt: pip install "xnor-edge[mqtt]" (or pip install paho-mqtt)'
        ) from None
    return mqtt


class MqttPublisher:
    """Publishes classification results as JSON to one topic; see the module docstring.

    A result is a dict with at least ``top`` ([{"label", "p"}], best first); its
    other keys (frame, source, latency_ms, ...) are published as they are, with
    ``seq`` (1, 2, ... per published message) and ``time`` added.
    ``mode="all"`` publishes every result, ``"change"`` only when the top-1
    label differs from the last published one; results whose top-1 probability
    is below ``min_confidence`` are never published.
    """

    def __init__(
        self,
        url: str,
        mode: str = "all",
        min_confidence: float = 0.0,
        qos: int = 0,
        retain: bool = False,
        queue_size: int = 100,
        max_pending: int = 20,
        client_id: str | None = None,
        reconnect_delay: tuple[int, int] = (1, 30),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"--mqtt-mode must be one of {', '.join(MODES)}, got {mode!r}")
        if qos not in (0, 1, 2):
            raise ValueError(f"--mqtt-qos must be 0, 1 or 2, got {qos!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"--mqtt-min-confidence must be in [0, 1], got {min_confidence!r}")
        if queue_size < 1 or max_pending < 1:
            raise ValueError("the MQTT queue size and pending limit must be >= 1")
        self.host, self.port, self.topic, user, password = parse_url(url)
        self.url = f"mqtt://{self.host}:{self.port}/{self.topic}"  # without credentials, for logs
        self.mode, self.min_confidence, self.qos, self.retain = mode, float(min_confidence), qos, retain
        self.max_pending = max_pending
        self.status_topic = f"{self.topic}/status"
        self._queue: collections.deque[bytes] = collections.deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._pending: set[int] = set()  # mids handed to paho, not yet written/acknowledged
        self._acked_early: set[int] = set()
        self._status_mids: set[int] = set()
        self._stats = MqttStats()
        self._last_label: str | None = None
        self._seq = 0
        self._closed = False

        mqtt = _import_paho()
        self._mqtt = mqtt
        cid = client_id or f"xnor-edge-{socket.gethostname()}-{threading.get_native_id()}"
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
        if user is not None:
            self._client.username_pw_set(user, password)
        self._client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(*reconnect_delay)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_publish = self._on_publish
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="xnor-edge-mqtt", daemon=True)
        self._sender.start()

    # ---------------------------------------------------------- producer side

    def _accept(self, top: list[dict[str, Any]]) -> bool:
        if not top:
            return False
        label, p = str(top[0]["label"]), float(top[0]["p"])
        if p < self.min_confidence:
            return False
        if self.mode == "change" and label == self._last_label:
            return False
        self._last_label = label
        return True

    def submit(self, result: dict[str, Any]) -> bool:
        """Queues one result for publishing (never blocks); returns whether it was queued."""
        with self._cond:
            if self._closed:
                return False
            self._stats.submitted += 1
            if not self._accept(result.get("top") or []):
                self._stats.skipped += 1
                return False
            self._seq += 1
            msg = {"seq": self._seq, "time": round(time.time(), 3), **result}
            if len(self._queue) == self._queue.maxlen:
                self._stats.dropped += 1  # deque(maxlen) pushes out the oldest
            self._queue.append(json.dumps(msg, separators=(",", ":")).encode())
            self._cond.notify_all()
            return True

    @property
    def stats(self) -> MqttStats:
        with self._cond:
            s = MqttStats(**asdict(self._stats))
            s.queued = len(self._queue)
            return s

    # ----------------------------------------------------------- sender side

    def _send_loop(self) -> None:
        # paho calls on_publish holding its own message lock, which publish() takes too:
        # never call into paho while holding self._cond.
        while True:
            with self._cond:
                while not self._closed and not (
                    self._stats.connected and self._queue and len(self._pending) < self.max_pending
                ):
                    self._cond.wait(0.5)
                if self._closed:
                    return
                payload = self._queue.popleft()
            info = self._client.publish(self.topic, payload, qos=self.qos, retain=self.retain)
            with self._cond:
                if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                    if info.mid in self._acked_early:
                        self._acked_early.discard(info.mid)
                        self._stats.sent += 1
                    else:
                        self._pending.add(info.mid)
                else:  # the connection dropped since the check: keep it, oldest first
                    self._stats.connected = False
                    if len(self._queue) == self._queue.maxlen:
                        self._stats.dropped += 1
                    else:
                        self._queue.appendleft(payload)

    # --------------------------------------------------- paho's thread calls

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        ok = not reason.is_failure
        with self._cond:
            self._stats.connected = ok
            if ok:
                self._stats.connects += 1
                self._stats.last_error = None
            else:
                self._stats.last_error = f"broker refused the connection: {reason}"
            self._cond.notify_all()
        if ok:
            info = client.publish(self.status_topic, "online", qos=1, retain=True)
            with self._cond:  # its acknowledgement comes later, in this same thread
                self._status_mids.add(info.mid)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        with self._cond:
            self._stats.last_error = f"cannot reach the broker at {self.host}:{self.port}"

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            self._stats.connected = False
            if reason.is_failure:
                self._stats.last_error = f"lost the broker at {self.host}:{self.port} ({reason})"
            self._cond.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            if mid in self._status_mids:
                self._status_mids.discard(mid)
            elif mid in self._pending:
                self._pending.discard(mid)
                self._stats.sent += 1
                self._cond.notify_all()
            else:  # acknowledged before the sender recorded it
                self._acked_early.add(mid)

    # -------------------------------------------------------------- lifetime

    def flush(self, timeout: float) -> bool:
        """Waits up to ``timeout`` s for the queue and pending messages to drain."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, flush_timeout: float = 1.0) -> None:
        """Sends what it can within ``flush_timeout`` s, marks the device offline, disconnects."""
        if self._closed:
            return
        if self.stats.connected:
            self.flush(flush_timeout)
            self._client.publish(self.status_topic, "offline", qos=1, retain=True)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._sender.join(timeout=2.0)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
