"""What a client does, free of any I/O library: request builders and reply parsers per
API flavor, realistic canary-carrying prompts, SSE stream parsing, target profiles.

A driver (``sessionstorm.driver`` on httpx, the Locust users on FastHttpUser) does::

    req = gateway.build_chat(profile, prompts, key=key, model=m)     # Request: method, path, headers, body, op
    op.start(req.op, in_flight=n)                                    # stamp invoke times
    ... send; req.op["peer"] = "ip:port" really reached ...
    gateway.parse_chat(req.op, status, headers, body)                # or ChatStream for streams
    op.complete(req.op); history.op(**req.op)

Op kinds by flavor (the ``kind`` of history records):

=============  =============================================================================
gateway        ``chat``, ``chat_stream`` (model_asked/served, session_seen, request_id_seen,
               canaries_seen; streams also chunk_canaries, chunks, ttft, chunk_gaps in s)
observe        ``create_session`` (session_seen), ``observe`` (value = canary written),
               ``read_session`` (values = canary of each observation read back, in order),
               ``delete_session``
conversation   ``message`` (value = canary sent, turn and session_seen as the service
               reports, values = canaries of the context it returned, in order)
=============  =============================================================================
"""
from __future__ import annotations

from sessionstorm.profile import Profile, load_profile
from sessionstorm.stack.launch import RunningTarget
from sessionstorm.workload import conversation, gateway, observe
from sessionstorm.workload.op import Request, transport_error
from sessionstorm.workload.prompts import PromptMaker

# kind -> parser(op, status, headers, body) for complete (non-streamed) replies
PARSERS = {
    "chat": gateway.parse_chat,
    "create_session": observe.parse, "observe": observe.parse, "read_session": observe.parse,
    "delete_session": observe.parse,
    "message": conversation.parse,
}
STREAM_KINDS = frozenset({"chat_stream"})

__all__ = ["PARSERS", "STREAM_KINDS", "Profile", "PromptMaker", "Request", "RunningTarget", "conversation",
           "gateway", "load_profile", "observe", "transport_error"]
