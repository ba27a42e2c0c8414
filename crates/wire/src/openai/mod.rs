//! OpenAI Chat Completions dialect and conversion to and from Anthropic Messages.
