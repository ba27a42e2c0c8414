//! Bedrock InvokeModel envelopes and the AWS event-stream framing.
