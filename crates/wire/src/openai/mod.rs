//! OpenAI Chat Completions dialect and conversion to and from Anthropic Messages, for requests,
//! whole responses and streams, in both directions.
//!
//! Conversion happens only when the client's dialect and the upstream's differ; a Chat client in
//! front of a Chat upstream is passed through (`passthrough`). What cannot be
//! carried faithfully is refused with a [`ConvertError`] naming the field; what is dropped is
//! listed below and changes nothing the model writes.
//!
//! # Format
//! Requests and responses are JSON. Chat Completions streams are SSE `data:` lines each holding a
//! `chat.completion.chunk` object, ended by `data: [DONE]`; usage comes in a last chunk with
//! `choices: []` only when the request set `stream_options.include_usage`. Messages streams are
//! `event: NAME\ndata: JSON\n\n` frames: `message_start`, per content block
//! `content_block_start` / `content_block_delta` / `content_block_stop` (one block open at a
//! time), `message_delta` (stop reason, usage), `message_stop`; `ping` may come at any time and
//! failures arrive as `event: error`.
//!
//! # System prompts
//! - Messages → Chat: the top-level `system` (string or text blocks) becomes a leading `system`
//!   message; every `role: "system"` message inside `messages` (Claude Code sends these) becomes
//!   a `system` message in the same position. Claude Code's attribution block
//!   (`x-anthropic-billing-header: …`) is dropped: it is billing metadata for Anthropic.
//! - Chat → Messages: leading `system`/`developer` messages become the top-level `system`; a later
//!   one stays in place as a `role: "system"` message, because moving a mid-conversation
//!   instruction to the top would change what it applies to.
//! - One text is written as a plain string; several stay separate text parts/blocks.
//!
//! # Content
//! - Images: base64 or URL `image` blocks ↔ `image_url` parts with a data URL or the URL.
//!   `detail` is dropped (Anthropic sizes images itself).
//! - `tool_use` ↔ assistant `tool_calls` (`arguments` is the input as a JSON string; `""` reads as
//!   `{}`, anything that is not a JSON object is an error).
//! - `tool_result` ↔ one `role: "tool"` message per result, in order; the text and images of the
//!   same user turn that follow the results become a following user message (and merge back).
//!   `is_error: true` is written as `<tool_use_error>…</tool_use_error>` around the text (the tags
//!   Claude Code itself uses), and such text reads back as `is_error: true`.
//! - Refused: `document` blocks, images inside tool results, server-tool blocks, and any other
//!   block type Chat Completions cannot carry; OpenAI `input_audio`/`file` parts, audio, deprecated
//!   `function` messages.
//! - A final assistant message (prefill) is refused: Anthropic continues it, a Chat Completions
//!   upstream would start a new message instead.
//!
//! # Tools
//! `tools[]` (name, description, input_schema, strict) ↔ `tools[].function` (name, description,
//! parameters, strict); `tool_choice` auto/any/tool/none ↔ auto/required/{function}/none;
//! `disable_parallel_tool_use: true` ↔ `parallel_tool_calls: false`. An empty tool list is
//! omitted. Anthropic server tools (`type` other than `custom`), `defer_loading: true` tools and
//! `tool_reference` blocks are refused; for the last two the message tells Claude Code users to
//! set `ENABLE_TOOL_SEARCH=false`. `cache_control` is dropped everywhere (OpenAI caches
//! prefixes by itself).
//!
//! # Model quirks (Messages → Chat)
//! [`ModelQuirks`] in [`ConvertOptions`] say what the target model takes. A model without
//! `reasoning_effort` gets none: thinking is a budget the model may use, and such a model answers
//! the same without it. A model without sampling parameters gets none of `temperature`/`top_p`
//! when they hold the default 1 (nothing changes); any other value is refused naming the field,
//! since dropping it would change the answer.
//!
//! # Thinking
//! - Messages → Chat: `thinking: {type: "enabled", budget_tokens}` → `reasoning_effort` `low`
//!   below 4096 tokens, `medium` below 16384, else `high`. `{type: "adaptive"}` → the request's
//!   `output_config.effort` (`max` → `high`), else `medium`. Without thinking (or disabled), an
//!   `output_config.effort` alone still sets `reasoning_effort`. `thinking.display` is dropped.
//!   Earlier `thinking` and `redacted_thinking` blocks are dropped: their signatures only verify
//!   on Anthropic's servers. A model whose [`ModelQuirks`] ask for `replay_reasoning` gets the
//!   text of an assistant message's thinking blocks back as its `reasoning_content`. The effort of a message-level `output_config` (on Claude Code's
//!   system messages) is dropped; the request-level one decides.
//! - Chat → Messages: `reasoning_effort` → `thinking: {type: "enabled", budget_tokens}` with
//!   minimal 1024, low 2048, medium 8192, high 24576, xhigh 32768 (each maps back to the same
//!   effort); `none` sends no thinking. The budget stays below `max_tokens`: without a client
//!   limit `max_tokens` becomes budget + 4096; with a smaller limit the budget shrinks to
//!   limit − 1; a limit of 1024 or less is refused.
//! - Responses: OpenAI-compatible `reasoning_content` (or `reasoning`) text becomes a `thinking`
//!   block with an empty `signature` (the shape Anthropic's streams start a block with; the
//!   Anthropic SDKs' types require the member, and Claude Code keeps the block and sends it back).
//!   No signature is ever made up and no `signature_delta` is sent. Such a block cannot be
//!   replayed to an Anthropic upstream, and this module drops it on the way back to an OpenAI
//!   one (or replays its text as `reasoning_content` where [`ModelQuirks`] ask for it).
//!   Anthropic thinking becomes `reasoning_content` (its text) plus `thinking_blocks` (the signed
//!   blocks verbatim, as LiteLLM names them); an OpenAI-dialect client that sends
//!   `thinking_blocks` back on its assistant message gets them replayed to Anthropic, which a
//!   tool loop with thinking requires. `reasoning_content` and unsigned `thinking_blocks` sent back
//!   are dropped: Anthropic rejects unsigned thinking.
//!
//! # Parameters
//! - `max_tokens` ↔ `max_completion_tokens` (`max_tokens` from OpenAI clients is accepted; without
//!   either, Anthropic gets 4096; towards a model whose [`ModelQuirks`] say so, `max_tokens`);
//!   `stop_sequences` ↔ `stop`; `temperature`, `top_p` as they are
//!   (OpenAI allows temperatures above 1, which Anthropic rejects itself); `metadata.user_id` ↔
//!   `user` (or `safety_identifier`); `output_config.format` (or the older `output_format`)
//!   json_schema ↔ `response_format: {type: "json_schema", json_schema: {name: "output", schema,
//!   strict: true}}` (Anthropic always enforces the schema; OpenAI's `json_object` is refused);
//!   `stream` ↔ `stream`, and towards OpenAI always `stream_options: {include_usage: true}` so
//!   that usage is metered.
//! - Refused towards OpenAI: `top_k`, `container`, `mcp_servers` and any unknown top-level field;
//!   `context_management` edits other than `clear_thinking_*` (those are moot, as thinking is not
//!   sent).
//! - Dropped towards OpenAI: `cache_control`, `service_tier`, `anthropic_version`,
//!   `anthropic_beta`, `safeguards` (auto mode's server-side classifier cannot run on another
//!   provider; Claude Code notices its verdict is missing and says so).
//! - Refused towards Anthropic: `n` other than 1, non-zero `frequency_penalty`/`presence_penalty`,
//!   `logit_bias`, `logprobs`, `top_logprobs`, non-text `modalities`, `audio`, `prediction`,
//!   `web_search_options`, `functions`, `verbosity` and any unknown field.
//! - Dropped towards Anthropic: `metadata`, `store`, `service_tier`, `prompt_cache_key`,
//!   `prompt_cache_retention`, `seed` (best-effort even at OpenAI), `stream_options` (the caller
//!   passes `include_usage` to [`MessagesToChatStream::new`]), message `name`s.
//!
//! # Stop reasons and usage
//! end_turn/stop_sequence ↔ stop (a vLLM-reported matched stop string gives `stop_sequence`),
//! max_tokens ↔ length, tool_use ↔ tool_calls, refusal ↔ content_filter (an OpenAI `refusal`
//! becomes text and `refusal`). Anthropic input + cache reads + cache writes = OpenAI
//! `prompt_tokens`, with `cached_tokens` = cache reads; output ↔ `completion_tokens`.
//!
//! # Streams
//! - Chat → Messages ([`ChatToMessagesStream`]): text, reasoning and each tool call (by `index`,
//!   or a new `id` at a reused index) become one content block each, opened when their first
//!   piece arrives and closed when another kind starts or the choice finishes, so blocks never
//!   interleave. Arguments that arrive for a tool call whose block is already closed (an upstream
//!   interleaving parallel calls) end the stream with an error rather than corrupt it.
//!   `message_delta`/`message_stop` follow `[DONE]`; a stream that ends without it gets an
//!   `event: error` so that the client retries.
//! - Messages → Chat ([`MessagesToChatStream`]): the role chunk on `message_start`, then content,
//!   `reasoning_content` and tool-call chunks (`index`/`id`/`type`/`name` first, then argument
//!   pieces), `thinking_blocks` when a thinking block closes, the `finish_reason` chunk on
//!   `message_delta`, the usage chunk (when asked for) and `data: [DONE]` on `message_stop`. An
//!   `event: error`, an early end or an unrepresentable block gives an error chunk
//!   `data: {"error":{…}}` and no `[DONE]`.

mod error;
mod fields;
mod mapping;
mod passthrough;
mod request;
mod response;
mod stream;
mod types;

pub use error::{ConvertError, openai_error_body};
pub use mapping::{DEFAULT_MAX_TOKENS, usage_from_chat};
pub use passthrough::{
    ChatStreamWatch, PassthroughRequest, chat_passthrough_request, chat_response_facts,
};
pub use request::{chat_to_messages_request, messages_to_chat_request};
pub use response::{chat_to_messages_response, messages_to_chat_response};
pub use stream::{ChatToMessagesStream, MessagesToChatStream};

/// What a conversion needs beyond the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// The model id written into the converted request.
    pub target_model: String,
    /// Which parameters the target model takes (Messages → Chat only).
    pub quirks: ModelQuirks,
}

/// Which Chat Completions parameters a model takes: OpenAI's reasoning models (o-series, gpt-5)
/// refuse `temperature` and `top_p` and count output in `max_completion_tokens`; classic chat
/// models refuse `reasoning_effort`. The default takes everything, as most compatible servers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelQuirks {
    /// Whether `reasoning_effort` may be sent.
    pub reasoning_effort: bool,
    /// Whether `temperature` and `top_p` may be sent.
    pub sampling: bool,
    /// The name under which the output limit is sent.
    pub max_tokens: MaxTokensField,
    /// Whether earlier thinking goes back as `reasoning_content` on assistant messages
    /// (DeepSeek V4 requires it in tool loops; OpenAI refuses the member).
    pub replay_reasoning: bool,
}

impl Default for ModelQuirks {
    fn default() -> Self {
        Self {
            reasoning_effort: true,
            sampling: true,
            max_tokens: MaxTokensField::MaxCompletionTokens,
            replay_reasoning: false,
        }
    }
}

/// The request member carrying the output limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_completion_tokens`: OpenAI's current name, the only one reasoning models take.
    MaxCompletionTokens,
    /// `max_tokens`: the older name, all that some compatible servers know.
    MaxTokens,
}
