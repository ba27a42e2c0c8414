//! Vertex AI rawPredict envelopes.
