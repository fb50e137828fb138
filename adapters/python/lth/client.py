"""A Liên Thông Hub client: one member's connection to hubd.

Single-threaded, like the C SDK: nothing happens in the background; the
client does its work inside run(), request(), wait() and close(), which
process incoming traffic (and so may call handlers) while they wait.

    c = Client("tcp://127.0.0.1:5555", "hub.pub", "me.secret")
    c.offer("citizen.lookup/v1", handler)        # handler(client, msg) -> Reply | None
    c.connect()                                   # Hello -> Welcome
    mid = c.send("VN/GOV/HN-VP/DVCQG", "dossier.status/v1", b"{...}")
    outcome = c.wait(mid)                         # Outcome(ok, hub_seq | code, reason)
    reply = c.request("VN/GOV/BCA/CSDLQGDC", "citizen.lookup/v1", b"{...}")
"""
import collections
import os
import time
import uuid

import zmq
import zmq.utils.monitor

from . import keys, sign
from .proto import (DELIVERY_ONLINE_ONLY, DELIVERY_QUEUED, KIND_EVENT, KIND_REPLY, KIND_REQUEST,
                    PROTOCOL_VERSION, nack_name, pb)

PING_SERVICE = "lth.ping/v1"
SIGN_BATCH = 64          # envelopes per batch signature, as the C SDK
MAX_BATCH = 512          # envelopes per Batch frame
DEDUP_WINDOW = 65536     # deliveries remembered for de-duplication
# After NACK UNAVAILABLE (the hub's store did not complete the commit): the
# same envelopes go again after 200 ms, doubling to 5 s while the hub keeps
# answering so, as the C SDK.
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


class Outcome:
    """The hub's answer for one envelope: an ACK (ok, hub_seq; 0 = not
    stored, e.g. online-only) or a NACK (code, code_name, reason)."""

    def __init__(self, message_id, ok, hub_seq=0, code=0, reason=""):
        self.message_id = message_id
        self.ok = ok
        self.hub_seq = hub_seq
        self.code = code
        self.reason = reason

    @property
    def code_name(self):
        return nack_name(self.code) if self.code else ""

    def __repr__(self):
        if self.ok:
            return "Outcome(%s ACK hub_seq=%d)" % (self.message_id, self.hub_seq)
        return "Outcome(%s NACK %s: %s)" % (self.message_id, self.code_name, self.reason)


class HubError(Exception):
    """A NACK from the hub, or no answer in time."""

    def __init__(self, message, outcome=None):
        super().__init__(message)
        self.outcome = outcome

    @property
    def code(self):
        return self.outcome.code if self.outcome else 0


class Message:
    """A delivered envelope, as a handler sees it."""

    def __init__(self, env, item):
        self.message_id = env.message_id
        self.correlation_id = env.correlation_id
        self.sender = env.sender
        self.receiver = env.receiver
        self.service = env.service
        self.content_type = env.content_type
        self.payload = bytes(env.payload)
        self.kind = env.kind
        self.delivery = env.delivery
        self.created_at_us = env.created_at_us
        self.hub_seq = item.hub_seq
        self.attempt = item.attempt


class Reply:
    def __init__(self, payload, content_type="application/octet-stream"):
        self.payload = payload
        self.content_type = content_type


class Later(Exception):
    """Raised by a handler that cannot handle a message now (e.g. its
    database is down): the message is not settled, and the hub delivers it
    again later (and dead-letters it once its retry budget is spent)."""


class Reject(Exception):
    """Raised by a handler that can never take a message (it breaks the
    receiver's rules): the hub is asked to move it to its dead-letter queue
    with this reason (Settle.rejects). A hub that does not act on that
    delivers it again until its retry budget is spent, then dead-letters it."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = str(reason)[:400]


class _Out:
    __slots__ = ("env", "signed", "sent", "outcome", "order", "retry")

    def __init__(self, env, order):
        self.env = env          # lth.v1.Envelope, signed when sent
        self.signed = False
        self.sent = False
        self.outcome = None
        self.order = order
        self.retry = False      # answered UNAVAILABLE: sent again at _retry_at


class Client:
    def __init__(self, endpoint, hub_key_file, member_key_file, software="lth-python 0.1",
                 on_outcome=None, sign_always=False):
        self.key = keys.read_key_file(member_key_file)
        if not self.key.has_secret:
            raise keys.KeyFileError("%s has no secret key: use the member's .secret file"
                                    % member_key_file)
        self._signing_key = self.key.signing_key() if self.key.sign_secret else None
        hub = keys.read_key_file(hub_key_file)
        self.endpoint = endpoint
        self.software = software
        self.on_outcome = on_outcome      # callable(Outcome) for every answer
        self.sign_always = sign_always
        self._offers = {}                 # service -> handler; None = default handler
        self._subs = {}                   # topic -> handler
        self._out = {}                    # message id -> _Out, until answered and collected
        self._order = 0
        self._awaits = {}                 # request id -> reply Message or None
        self._seen = set()
        self._seen_ring = collections.deque()
        self._settle = []
        self._rejects = []                # pb.Reject, sent with the next settle
        self.welcome = None
        self.hub_id = ""
        self._signatures_required = True
        self._handshaken = False
        self._last_hb = 0.0
        self._last_rx = 0.0
        self._last_hello = 0.0
        self.refused = False
        self.last_error = ""
        self._retry_at = 0.0              # monotonic: when UNAVAILABLE ones go again
        self._retry_backoff = 0.0         # the next wait; 0 = RETRY_MIN_S
        self.resent = 0                   # envelopes sent again after UNAVAILABLE

        self._ctx = zmq.Context()
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)
        s.curve_serverkey = hub.curve_public.encode()
        s.curve_publickey = self.key.curve_public.encode()
        s.curve_secretkey = self.key.curve_secret.encode()
        s.setsockopt(zmq.MAXMSGSIZE, 64 << 20)
        # Capped exponential backoff with a random start, as the C SDK.
        s.setsockopt(zmq.RECONNECT_IVL, 200 + int.from_bytes(os.urandom(1), "big"))
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 2000 + 4 * int.from_bytes(os.urandom(1), "big"))
        self._mon = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED
                                         | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                         | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                         | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                         | zmq.EVENT_DISCONNECTED)
        s.connect(endpoint)
        self._sock = s
        self._poller = zmq.Poller()
        self._poller.register(s, zmq.POLLIN)
        self._poller.register(self._mon, zmq.POLLIN)

    # ---- lifecycle ------------------------------------------------------

    @property
    def member_id(self):
        return self.key.member_id

    @property
    def connected(self):
        return self.welcome is not None

    def connect(self, timeout=5.0):
        """Waits for the hub's Welcome. Raises HubError when the hub refuses
        this member's key or does not answer in time."""
        deadline = time.monotonic() + timeout
        while not self.connected and not self.refused and time.monotonic() < deadline:
            self._pump(min(0.05, max(0.0, deadline - time.monotonic())))
        if self.refused:
            raise HubError(self.last_error)
        if not self.connected:
            raise HubError("no answer from a hub at %s within %.1f s%s; check the endpoint "
                           "and that hubd runs" % (self.endpoint, timeout,
                                                   ": " + self.last_error if self.last_error else ""))

    def close(self):
        """Sends pending settles and closes. Unanswered envelopes are dropped:
        send them again (same message id) from a new client if they matter."""
        if self._sock is None:
            return
        self._flush_settle()
        self._sock.disable_monitor()
        self._mon.close()
        self._sock.close()
        self._ctx.term()
        self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- offering and subscribing ----------------------------------------

    def offer(self, service, handler):
        """handler(client, Message) -> Reply, bytes or None for a request
        (None: no reply); raise Later to have it delivered again later, or
        Reject(reason) to have the hub dead-letter it.
        service=None sets the handler for services without one of their own."""
        self._offers[service] = handler
        if self.connected and service:
            self._send_hello()

    def subscribe(self, topic, handler):
        """Durable subscription to PUBLISHER-ID/SERVICE/VERSION."""
        self._subs[topic] = handler
        if self.connected:
            self._send_hello()

    # ---- sending -----------------------------------------------------------

    def send(self, receiver, service, payload, content_type="application/octet-stream",
             kind=KIND_EVENT, delivery=DELIVERY_QUEUED, correlation_id="", ttl_ms=0,
             message_id=None, created_at_us=None):
        """Posts an envelope and returns its message id at once; the hub's
        answer comes to on_outcome and to wait(). message_id: choose your
        own (a UUID) to make a resend after a restart idempotent: the hub
        answers the same envelope with its original ACK."""
        if message_id is None:
            message_id = str(uuid.uuid4())
        if message_id in self._out:
            raise ValueError("message %s is already waiting for the hub's answer" % message_id)
        env = pb.Envelope(
            message_id=message_id, correlation_id=correlation_id, sender=self.member_id,
            receiver=receiver, service=service,
            created_at_us=created_at_us if created_at_us is not None else int(time.time() * 1e6),
            ttl_ms=ttl_ms, content_type=content_type or "", payload=bytes(payload), kind=kind,
            delivery=delivery)
        self._order += 1
        self._out[message_id] = _Out(env, self._order)
        self._flush_out()
        return message_id

    def publish(self, service, payload, content_type="application/octet-stream", **kw):
        if not self.hub_id:
            raise HubError("not connected yet: the hub's id comes with its Welcome")
        return self.send(self.hub_id, service, payload, content_type, kind=KIND_EVENT, **kw)

    def outcome(self, message_id):
        """The hub's answer for message_id, or None while there is none."""
        o = self._out.get(message_id)
        return o.outcome if o else None

    def wait(self, message_id, timeout=10.0):
        """Waits for the hub's answer for message_id and forgets the message.
        Raises HubError if none comes in time (the message stays queued: its
        outcome still reaches on_outcome)."""
        deadline = time.monotonic() + timeout
        while True:
            o = self._out.get(message_id)
            if o is None:
                raise KeyError(message_id)
            if o.outcome is not None:
                del self._out[message_id]
                return o.outcome
            left = deadline - time.monotonic()
            if left <= 0:
                raise HubError("the hub did not answer for %s in time%s" %
                               (message_id, "" if self.connected else " (not connected)"))
            self._pump(min(left, 0.1))

    def pending(self):
        """Message ids posted and not yet answered by the hub."""
        return [k for k, o in self._out.items() if o.outcome is None]

    def request(self, receiver, service, payload, content_type="application/octet-stream",
                timeout=5.0, online_only=True):
        """Sends a request and waits for its reply (a Message). Raises
        HubError on a NACK (e.outcome.code) or when no reply comes."""
        mid = self.send(receiver, service, payload, content_type, kind=KIND_REQUEST,
                        delivery=DELIVERY_ONLINE_ONLY if online_only else DELIVERY_QUEUED)
        self._awaits[mid] = None
        deadline = time.monotonic() + timeout
        try:
            o = self.wait(mid, timeout)
            if not o.ok:
                raise HubError("the hub refused the request (%s): %s" % (o.code_name, o.reason), o)
            while self._awaits.get(mid) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HubError("no reply from %s within %.1f s" % (receiver, timeout))
                self._pump(min(left, 0.1))
            return self._awaits[mid]
        finally:
            self._awaits.pop(mid, None)

    def run(self, timeout=0.0):
        """Processes traffic for `timeout` seconds (0: only what is pending)."""
        deadline = time.monotonic() + timeout
        while True:
            self._pump(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return

    # ---- internals ---------------------------------------------------------

    def _frame(self, **body):
        return pb.Frame(protocol_version=PROTOCOL_VERSION, **body)

    def _send_frame(self, frame):
        try:
            self._sock.send(frame.SerializeToString(), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _send_hello(self):
        hello = pb.Hello(protocol_version=PROTOCOL_VERSION, member_id=self.member_id,
                         services=[s for s in self._offers if s],
                         software=self.software, subscriptions=list(self._subs),
                         receipts_in_deliveries=True)
        self._send_frame(self._frame(hello=hello))
        self._last_hello = time.monotonic()

    def _heartbeat_s(self):
        return (self.welcome.heartbeat_ms if self.welcome and self.welcome.heartbeat_ms
                else 1000) / 1000.0

    def _sign(self, outs):
        if not outs:
            return
        if self._signing_key is None or not (self._signatures_required or self.sign_always):
            for o in outs:
                o.signed = True
            return
        for i in range(0, len(outs), SIGN_BATCH):
            chunk = outs[i:i + SIGN_BATCH]
            if len(chunk) == 1:
                sign.sign_envelope(chunk[0].env, self._signing_key)
            else:
                sig, proofs = sign.batch_sign([sign.digest(o.env) for o in chunk],
                                              self._signing_key)
                for o, proof in zip(chunk, proofs):
                    sign.set_batch_signature(o.env, sig, proof)
            for o in chunk:
                o.signed = True

    def _retry_later(self, o, reason):
        """The hub answered UNAVAILABLE: its store did not complete the
        commit, so the envelope is not accepted; the same envelope (same
        message id, same signature) goes again after the retry delay, and a
        commit that completed after all gets its original ACK."""
        o.sent = False
        if o.retry:
            return
        o.retry = True
        if not self._retry_at:
            wait = self._retry_backoff or RETRY_MIN_S
            self._retry_at = time.monotonic() + wait
            self._retry_backoff = min(wait * 2, RETRY_MAX_S)
        self.last_error = ("the hub did not complete the commit (UNAVAILABLE): %s; sending the "
                           "same message again" % reason)

    def _retry_due(self):
        if not self._retry_at or time.monotonic() < self._retry_at:
            return
        self._retry_at = 0.0
        for o in self._out.values():
            if o.retry:
                o.retry = False
                self.resent += 1

    def _flush_out(self):
        if not self.connected:
            return
        self._retry_due()
        todo = sorted((o for o in self._out.values()
                       if o.outcome is None and not o.sent and not o.retry),
                      key=lambda o: o.order)
        for i in range(0, len(todo), MAX_BATCH):
            chunk = todo[i:i + MAX_BATCH]
            self._sign([o for o in chunk if not o.signed])
            batch = pb.Batch(envelopes=[o.env.SerializeToString() for o in chunk])
            if not self._send_frame(self._frame(batch=batch)):
                return
            for o in chunk:
                o.sent = True

    def _flush_settle(self):
        if (self._settle or self._rejects) and self.connected:
            settle = pb.Settle(hub_seqs=self._settle, rejects=self._rejects)
            if self._send_frame(self._frame(settle=settle)):
                self._settle = []
                self._rejects = []

    def _answer(self, outcome):
        o = self._out.get(outcome.message_id)
        if o is None or o.outcome is not None:
            return
        o.outcome = outcome
        if self.on_outcome:
            self.on_outcome(outcome)
        if outcome.message_id not in self._awaits and self.on_outcome:
            # Reported; nobody will wait() for it.
            del self._out[outcome.message_id]

    def _receipts(self, r):
        for a in r.acks:
            o = self._out.get(a.message_id)
            if o is not None:
                o.retry = False  # an earlier send's ACK came after all
            self._retry_backoff = 0.0
            self._answer(Outcome(a.message_id, True, hub_seq=a.hub_seq))
        for n in r.nacks:
            o = self._out.get(n.message_id)
            if o is not None and o.outcome is None and n.code == pb.NACK_UNAVAILABLE:
                self._retry_later(o, n.reason)
            elif o is not None:
                self._answer(Outcome(n.message_id, False, code=n.code, reason=n.reason))
            else:
                self.last_error = "the hub refused an envelope (%s): %s" % (nack_name(n.code),
                                                                            n.reason)

    def _remember(self, key):
        if key in self._seen:
            return
        self._seen.add(key)
        self._seen_ring.append(key)
        if len(self._seen_ring) > DEDUP_WINDOW:
            self._seen.discard(self._seen_ring.popleft())

    def _delivery(self, item):
        env = pb.Envelope()
        try:
            env.ParseFromString(item.envelope)
        except Exception:  # noqa: BLE001 - any decode error: drop and settle
            self._settle.append(item.hub_seq)
            return
        if len(env.signature) or self._signatures_required:
            if not sign.verify_envelope(env, bytes(item.sender_sign_key)):
                # Not settled: a forged or damaged envelope is never handled.
                self.last_error = "delivery %s from %s has a bad signature" % (
                    env.message_id, env.sender)
                return
        key = env.sender + "/" + env.message_id
        if key in self._seen:
            if item.hub_seq:
                self._settle.append(item.hub_seq)
            return
        msg = Message(env, item)
        if env.kind == KIND_REPLY:
            if env.correlation_id in self._awaits and self._awaits[env.correlation_id] is None:
                self._awaits[env.correlation_id] = msg
            self._remember(key)
            if item.hub_seq:
                self._settle.append(item.hub_seq)
            return
        reply = None
        if env.service == PING_SERVICE and env.kind == KIND_REQUEST:
            reply = Reply(msg.payload, env.content_type)
        else:
            if self.hub_id and env.receiver == self.hub_id:
                handler = self._subs.get(env.sender + "/" + env.service)
            else:
                handler = self._offers.get(env.service, self._offers.get(None))
            if handler is None:
                return  # not settled: delivered again once a handler exists
            try:
                reply = handler(self, msg)
            except Later:
                return
            except Reject as r:
                if item.hub_seq:
                    self._rejects.append(pb.Reject(hub_seq=item.hub_seq, reason=r.reason))
                return
            if isinstance(reply, (bytes, bytearray)):
                reply = Reply(bytes(reply), env.content_type)
        if env.kind == KIND_REQUEST and reply is not None:
            self.send(env.sender, env.service, reply.payload, reply.content_type, kind=KIND_REPLY,
                      delivery=env.delivery, correlation_id=env.message_id)
        self._remember(key)
        if item.hub_seq:
            self._settle.append(item.hub_seq)

    def _on_frame(self, data):
        f = pb.Frame()
        try:
            f.ParseFromString(data)
        except Exception:  # noqa: BLE001
            return
        self._last_rx = time.monotonic()
        body = f.WhichOneof("body")
        if body == "welcome":
            self.welcome = f.welcome
            self.hub_id = f.welcome.hub_id
            self._signatures_required = f.welcome.signatures_required
            # A new connection: everything unanswered goes again (the hub
            # answers a stored duplicate with its original ACK).
            for o in self._out.values():
                o.sent = False
            self._flush_out()
        elif body == "receipts":
            self._receipts(f.receipts)
            self._flush_out()
        elif body == "deliveries":
            if f.deliveries.HasField("receipts"):
                self._receipts(f.deliveries.receipts)
            for item in f.deliveries.items:
                self._delivery(item)
            self._flush_settle()
            self._flush_out()
        elif body == "error":
            self.last_error = "the hub refused a frame (%s): %s" % (nack_name(f.error.code),
                                                                   f.error.reason)
            if f.error.code == pb.NACK_HELLO_REQUIRED:
                self.welcome = None
                if time.monotonic() - self._last_hello > 0.1:
                    self._send_hello()

    def _on_monitor(self):
        while True:
            try:
                ev = zmq.utils.monitor.recv_monitor_message(self._mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            e = ev["event"]
            if e == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshaken = True
                self.refused = False
                self._send_hello()
            elif e == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self.refused = True
                self.welcome = None
                self.last_error = ("the hub did not accept this member's key (%s); ask the hub "
                                   "operator to add this member's .pub file" % self.member_id)
            elif e in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                self.welcome = None
                self.last_error = ("the CURVE handshake with the hub failed; check that the hub "
                                   "key file is the hub's current public key")
            elif e == zmq.EVENT_DISCONNECTED:
                self._handshaken = False
                self.welcome = None

    def _pump(self, timeout):
        now = time.monotonic()
        hb = self._heartbeat_s()
        if self._handshaken:
            # Wake for the next heartbeat (or Hello) only on a live connection.
            due = self._last_hb + hb
            if not self.connected:
                due = min(due, self._last_hello + hb)
            timeout = max(0.0, min(timeout, due - now))
        if self._retry_at:
            timeout = max(0.0, min(timeout, self._retry_at - now))
        events = dict(self._poller.poll(int(timeout * 1000)))
        if self._mon in events:
            self._on_monitor()
        if self._sock in events:
            for _ in range(1024):
                try:
                    data = self._sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_frame(data)
        now = time.monotonic()
        if self._handshaken and now - self._last_hb >= hb:
            self._send_frame(self._frame(heartbeat=pb.Heartbeat(sent_at_us=int(time.time() * 1e6))))
            self._last_hb = now
        if self.connected and now - self._last_rx > 3 * hb:
            self.welcome = None  # silent hub: say hello again
        if self._handshaken and not self.connected and now - self._last_hello >= hb:
            self._send_hello()
        self._flush_settle()
        self._flush_out()
