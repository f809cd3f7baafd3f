"""One environment's conversation, whatever carries it (gRPC stream or lane).

``on_message`` applies one AgentMessage to the Dispatcher and queues the answers in the
environment's outbox; the transport's owner then writes them (``Dispatcher.flush`` for
gRPC, ``Dispatcher.flush_now`` for the lane, whose writes never wait).
"""

from __future__ import annotations

import logging

from klambda_proto import environment_pb2 as pb

from klambda_gateway.dispatch import Dispatcher, Environment, Transport

log = logging.getLogger(__name__)


class EnvironmentSession:
    def __init__(self, dispatcher: Dispatcher, transport: Transport) -> None:
        self.dispatcher = dispatcher
        self.transport = transport
        self.env: Environment | None = None

    def on_message(self, msg: pb.AgentMessage) -> bool:
        """Apply one message; False when the stream must be closed."""
        kind = msg.WhichOneof("kind")
        env = self.env
        if kind == "result" and env is not None:
            self.dispatcher.result(env, msg.result)
        elif kind == "register":
            reg = msg.register
            env = self.dispatcher.connected(reg, self.transport)
            if env is None:
                log.warning("unknown environment %s of %s/%s:%s registered; closing",
                            reg.environment_id, reg.namespace, reg.function_name, reg.version)
                return False
            self.env = env
            env.outbox.appendleft(pb.GatewayMessage(
                registered=pb.Registered(environment_id=env.environment_id)))
        elif env is None:
            log.warning("agent sent %s before Register; closing", kind)
            return False
        elif kind == "ready":
            self.dispatcher.ready(env, msg.ready)
        elif kind == "draining":
            self.dispatcher.draining(env)
        return True

    def ended(self) -> None:
        if self.env is not None:
            self.dispatcher.disconnected(self.env)
