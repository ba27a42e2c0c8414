"""Decode an AWS event-stream file with botocore, the reference implementation.

Usage: python3 botocore_check.py FILE

Feeds FILE to botocore.eventstream.EventStreamBuffer in small pieces (so partial frames are
exercised), parses every message with botocore's own Bedrock Runtime response parser
(InvokeModelWithResponseStream's ResponseStream union) and prints one JSON array:
  {"chunk": "<decoded bytes as text>"}             for chunk events
  {"exception": "<Code>", "message": "<Message>"}  for exception frames
  {"event": "<:event-type>"}                       for anything else
Exits 1 with the botocore error on stderr if a frame is rejected or bytes are left over.
"""

import json
import sys

import botocore.session
from botocore.eventstream import EventStreamBuffer
from botocore.parsers import EventStreamJSONParser

PIECE = 7


def main() -> int:
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    shape = model.operation_model("InvokeModelWithResponseStream").output_shape.members["body"]
    parser = EventStreamJSONParser()
    buf = EventStreamBuffer()
    out = []
    consumed = 0
    try:
        for i in range(0, len(data), PIECE):
            buf.add_data(data[i : i + PIECE])
            for message in buf:
                consumed += message.prelude.total_length
                response = message.to_response_dict()
                parsed = parser.parse(response, shape)
                if response["status_code"] != 200:
                    err = parsed["Error"]
                    out.append({"exception": err["Code"], "message": err["Message"]})
                elif "chunk" in parsed:
                    out.append({"chunk": parsed["chunk"]["bytes"].decode("utf-8")})
                else:
                    out.append({"event": message.headers.get(":event-type")})
    except Exception as e:  # noqa: BLE001 - any botocore rejection is the answer
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if consumed != len(data):
        print(f"{len(data) - consumed} bytes left over after the last frame", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
