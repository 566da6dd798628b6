"""How a service calls another: every RPC bounded in time, its request expiring with the wait.

A call that gets no answer within RPC_TIMEOUT_S seconds (the caller's configuration; default 10) raises
ServiceUnavailable (the gateway answers 503 `service_unavailable` with `Retry-After`), instead of holding
the caller while a service is down. The request itself is published with the same expiration, so a
service that was down does not run it later behind the user's back: the broker drops it. A service that
took it and is only slow may still finish it; that is why commands carry an idempotency key
(tansiq.commands): the client's retry with the same key gets the first result and never runs the command twice.

Used by the gateway for every call, and by referrals for its one call on the write path (intake's share),
whose own timeout is shorter than the gateway's so that the gateway hears why.
"""

import eventlet
from nameko.rpc import RpcProxy

from tansiq.errors import ServiceUnavailable

TIMEOUT_KEY, DEFAULT_TIMEOUT_S = "RPC_TIMEOUT_S", 10.0
RETRY_AFTER_S = 5
IDEMPOTENCY_HEADER = "Idempotency-Key"


class TimedRpcProxy(RpcProxy):
    """nameko's RpcProxy whose calls give up after RPC_TIMEOUT_S and whose requests expire with them."""

    def setup(self):
        self.timeout = float(self.container.config.get(TIMEOUT_KEY, DEFAULT_TIMEOUT_S))
        self.options = {**self.options, "expiration": self.timeout}  # the broker drops a request nobody took

    def get_dependency(self, worker_ctx):
        return TimedServiceProxy(super().get_dependency(worker_ctx), self.timeout)


class TimedServiceProxy:
    def __init__(self, proxy, timeout):
        self._proxy, self._timeout = proxy, timeout

    def __getattr__(self, method_name):
        method = getattr(self._proxy, method_name)
        service, timeout = self._proxy.service_name, self._timeout

        def call(*args, **kwargs):
            try:
                with eventlet.Timeout(timeout):
                    return method(*args, **kwargs)
            except eventlet.Timeout:
                # A late reply finds nobody waiting for it and is dropped by nameko's reply listener.
                raise ServiceUnavailable(f"the {service} service did not answer within {timeout:g} s; try again "
                                         f"with the same {IDEMPOTENCY_HEADER}",
                                         details={"service": service, "retry_after": RETRY_AFTER_S}) from None

        return call
