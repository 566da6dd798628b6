"""One failure stays one failure: what nameko does not do on its own.

nameko ends the whole container when anything raises after a worker's handler returned: a
worker replying to an RPC when the broker stops dies inside `Responder.send_response`, and an
ack on a connection that was just reset raises amqp's own errors (not the built-in
ConnectionError nameko expects). Either takes every entrypoint of the service down with it.
`install()` (called by `tansiq run`, once, after eventlet is patched) changes three things:

- acking or requeueing on a dead connection is logged, not raised: the broker gives an
  unacked message back when the channel closes, and handlers are idempotent (inbox);
- an RPC reply that cannot be sent (`Responder.send_response` raising) is logged and the
  request acked as usual: the caller times out instead of the service stopping for everyone;
- whatever else raises while a worker's result is handled is logged, and the container lives;
- an RPC reply is published without waiting for a publisher confirm (a broker round trip per
  reply): a reply lost with the broker is a call that times out, as above, and the caller's retry
  with its idempotency key gets the first result (tansiq.commands). Requests keep their confirms,
  which is how nameko tells a caller at once that no service of that name is running.

`HandlerBudget` stops a message handler that runs past its time budget: the handler's green
thread gets `HandlerTimedOut` (an ordinary exception, so nameko hands it to the consumer, which
retries then dead-letters the message). CPU-bound code must yield to be interrupted
(services.events.recurrence.cooperate does).
"""

import functools
import logging

log = logging.getLogger(__name__)

BUDGET_CONFIG_KEY = "HANDLER_TIME_BUDGET_S"
DEFAULT_BUDGET_SECONDS = 60.0
_installed = []


class HandlerTimedOut(Exception):
    """A message handler ran past its time budget and was stopped."""


def install():
    """Patch nameko (idempotent)."""
    if _installed:
        return
    from nameko.containers import ServiceContainer
    from nameko.messaging import QueueConsumer
    from nameko.rpc import Responder

    QueueConsumer.ack_message = _tolerant(QueueConsumer.ack_message, "ack")
    QueueConsumer.requeue_message = _tolerant(QueueConsumer.requeue_message, "requeue")
    Responder.send_response = _reply_or_log(Responder.send_response)
    Responder.publisher_cls = _unconfirmed(Responder.publisher_cls)
    ServiceContainer.spawn_worker = _with_safe_result_handling(ServiceContainer.spawn_worker)
    _installed.append(True)


def _tolerant(settle, what):
    @functools.wraps(settle)
    def settle_or_log(self, message):
        try:
            settle(self, message)
        except Exception as exc:  # noqa: BLE001 - amqp/kombu/socket errors of a connection going away
            log.warning("could not %s message %s (connection lost?): %r; the broker redelivers it",
                        what, _message_id(message), exc)

    return settle_or_log


def _reply_or_log(send_response):
    @functools.wraps(send_response)
    def send(self, result, exc_info):
        try:
            return send_response(self, result, exc_info)
        except Exception as exc:  # noqa: BLE001 - broker stopped or connection reset while replying
            log.error("could not send the reply to RPC %s: %r; the caller will time out",
                      _message_id(self.message), exc)
            return result, exc_info

    return send


def _unconfirmed(publisher_cls):
    return type("UnconfirmedReplyPublisher", (publisher_cls,), {"use_confirms": False})


def _with_safe_result_handling(spawn_worker):
    @functools.wraps(spawn_worker)
    def spawn(self, entrypoint, args, kwargs, context_data=None, handle_result=None):
        if handle_result is not None:
            handle_result = _safe(handle_result, entrypoint)
        return spawn_worker(self, entrypoint, args, kwargs, context_data=context_data, handle_result=handle_result)

    return spawn


def _safe(handle_result, entrypoint):
    @functools.wraps(handle_result)
    def handle(worker_ctx, result, exc_info):
        try:
            return handle_result(worker_ctx, result, exc_info)
        except Exception:  # noqa: BLE001 - nameko would kill the container (every entrypoint) here
            log.exception("handling the result of %s failed; the service keeps running", entrypoint)
            return result, exc_info

    return handle


def _message_id(message):
    try:
        return message.properties.get("message_id") or message.properties.get("correlation_id")
    except Exception:  # noqa: BLE001
        return None


def budget_seconds(config):
    return float(config.get(BUDGET_CONFIG_KEY) or DEFAULT_BUDGET_SECONDS)


class HandlerBudget:
    """Stops a worker's green thread that runs past `seconds` with HandlerTimedOut."""

    def __init__(self, container, seconds):
        self.container = container
        self.seconds = seconds
        self._timers = {}

    def start(self, worker_ctx):
        from eventlet.hubs import get_hub

        self._timers[worker_ctx] = get_hub().schedule_call_global(self.seconds, self._expire, worker_ctx)

    def stop(self, worker_ctx):
        """The handler returned or raised: its result is being handled, no more interruption."""
        timer = self._timers.pop(worker_ctx, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, worker_ctx):
        from eventlet.hubs import get_hub

        if worker_ctx not in self._timers:
            return
        thread = self.container._worker_threads.get(worker_ctx)
        if thread is None or thread.dead:
            self._timers.pop(worker_ctx, None)
            return
        # Looked at again in a second, until its result is handled (stop): not started yet (a starved hub:
        # throwing now would kill it outright), or still running after the throw (a broad `except Exception`
        # in the handler's own code swallows one: a name lookup did, and its message waited, unacked, until
        # the directory came back).
        self._timers[worker_ctx] = get_hub().schedule_call_global(1, self._expire, worker_ctx)
        if not thread:
            return
        log.error("%s ran past its time budget of %ss; stopped", worker_ctx, self.seconds)
        thread.throw(HandlerTimedOut(f"stopped after its time budget of {self.seconds:g} s"))
