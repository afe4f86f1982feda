"""The wire between runvm's host side (vm-shim, exec-shims, CLI) and the guest agent, written once for both.

Sans-I/O, as h11 and h2 are: bytes in, events out, bytes to send back; the sockets, pipes and event loops belong
to thin adapters (runtime.runvm.shim.conn, .link and .control on the host, runtime.agent.channel in the guest).
- frames: frame kinds, encoding, incremental decoding;
- connection: the request/reply bookkeeping of one framed connection (ids, pending requests, failures, close);
- flow: the credit window of one stream, for its sender and its receiver.

Standard library only, and nothing else from runtime: the guest image carries it next to the agent, under the
same name as on the host. No typing or asyncio either: the resident vm-shim imports it and stays small.
"""
