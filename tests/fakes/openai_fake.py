#!/usr/bin/env python3
"""A strict fake of OpenAI Chat Completions (and of its Azure OpenAI form).

    openai_fake.py --api-key KEY [--model ID ...] [--port 0]

Prints `LISTENING 127.0.0.1:PORT` once bound. Serves

    POST /v1/chat/completions                                        Authorization: Bearer KEY
    POST /openai/deployments/DEPLOYMENT/chat/completions?api-version=V   api-key: KEY
    GET  /v1/models                                                  Authorization: Bearer KEY

and validates bodies as the real service does (unknown parameters, message shapes, tool-call
pairing, parameter combinations). Answers follow the scenarios of the other fakes, rendered as
`chat.completion` / `chat.completion.chunk`. See README.md beside this file for the checks.
"""

from __future__ import annotations

import argparse
import hmac
import json
import re
import sys
import time
from typing import Any

import fakekit
from fakekit import ApiError, Drop, Request, Response, Stream

# The documented request body of POST /v1/chat/completions, as the official SDK (openai 3.57,
# `completion_create_params.py`) declares it. The service rejects anything else, which is how a
# gateway leaking Anthropic fields (`system`, `thinking`, `metadata`...) gets caught.
ALLOWED_PARAMS = frozenset(
    {
        "messages",
        "model",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)

# Allowed members of each message, by role.
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "function_call", "refusal", "audio"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}

# Allowed members of each content part, by part type.
PART_KEYS = {
    "text": {"type", "text", "prompt_cache_breakpoint"},
    "image_url": {"type", "image_url", "prompt_cache_breakpoint"},
    "input_audio": {"type", "input_audio", "prompt_cache_breakpoint"},
    "file": {"type", "file", "prompt_cache_breakpoint"},
    "refusal": {"type", "refusal"},
}
# Which part types each role may send.
ROLE_PARTS = {
    "system": {"text"},
    "developer": {"text"},
    "tool": {"text"},
    "user": {"text", "image_url", "input_audio", "file"},
    "assistant": {"text", "refusal"},
}

REASONING_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh", "max"}
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")

DEFAULT_MODELS = ("gpt-5.5", "gpt-5.5-mini")
# OpenAI's reasoning models refuse sampling parameters and `max_tokens`; its classic chat models
# refuse `reasoning_effort`. Ids of neither kind (what compatible servers serve) take everything.
REASONING_MODEL = re.compile(r"^(o1|o3|o4|gpt-5)(?!-chat)")
# DeepSeek V4 wants earlier reasoning back as `reasoning_content` on assistant messages.
REPLAY_MODEL = re.compile(r"^deepseek-v4")
CLASSIC_MODEL = re.compile(r"^(gpt-4|gpt-3\.5|chatgpt-|gpt-5-chat)")
CACHE_MARKERS = (b'"prompt_cache_breakpoint"', b'"prompt_cache_key"')


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: list[tuple[str, str]] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status,
            message,
            param,
            code,
            kind,
        )
        self.headers = headers or []

    def response(self) -> Response:
        return fakekit.json_response(
            self.status,
            {
                "error": {
                    "message": self.message,
                    "type": self.kind,
                    "param": self.param,
                    "code": self.code,
                }
            },
            self.headers,
        )


class AzureError(Exception):
    """Azure's gateway errors (auth, routing) use their own envelope."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        return fakekit.json_response(
            self.status, {"error": {"code": self.code, "message": self.message}}
        )


def bad(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param, code)


def type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }.get(type(value), "a value")


# --- validation -------------------------------------------------------------------------------


def check_content(content: Any, role: str, where: str, required: bool) -> None:
    if content is None:
        if required:
            raise bad(
                f"Invalid value for '{where}': expected a string, got null.", where, "invalid_type"
            )
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad(
            f"Invalid type for '{where}': expected one of a string or array of objects, but "
            f"got {type_name(content)} instead.",
            where,
            "invalid_type",
        )
    allowed = ROLE_PARTS.get(role, set())
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise bad(
                f"Invalid type for '{at}': expected an object, but got {type_name(part)} instead.",
                at,
                "invalid_type",
            )
        kind = part.get("type")
        if kind not in allowed:
            supported = ", ".join(f"'{t}'" for t in sorted(allowed))
            raise bad(
                f"Invalid value: '{kind}'. Supported values are: {supported}.",
                f"{at}.type",
                "invalid_value",
            )
        for key in part:
            if key not in PART_KEYS[kind]:
                raise bad(
                    f"Unrecognized request argument supplied: {at}.{key}",
                    f"{at}.{key}",
                    "unknown_parameter",
                )
        if kind == "text" and not isinstance(part.get("text"), str):
            raise bad(
                f"Missing required parameter: '{at}.text'.",
                f"{at}.text",
                "missing_required_parameter",
            )


def check_tool_calls(calls: Any, where: str) -> list[str]:
    if not isinstance(calls, list) or not calls:
        raise bad(
            f"Invalid '{where}': expected a non-empty array of tool calls.", where, "invalid_value"
        )
    ids = []
    for j, call in enumerate(calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            raise bad(
                f"Missing required parameter: '{at}.id'.", f"{at}.id", "missing_required_parameter"
            )
        if call.get("type") == "function":
            fn = call.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise bad(
                    f"Missing required parameter: '{at}.function.name'.",
                    f"{at}.function.name",
                    "missing_required_parameter",
                )
            # Arguments are JSON *text*; an object here means a converter forgot to serialise.
            if not isinstance(fn.get("arguments"), str):
                raise bad(
                    f"Invalid type for '{at}.function.arguments': expected a string, but got "
                    f"{type_name(fn.get('arguments'))} instead.",
                    f"{at}.function.arguments",
                    "invalid_type",
                )
            extra = set(call) - {"id", "type", "function"} or set(fn) - {"name", "arguments"}
        elif call.get("type") == "custom":
            extra = set(call) - {"id", "type", "custom"}
        else:
            raise bad(
                f"Invalid value: '{call.get('type')}'. Supported values are: 'function' and "
                f"'custom'.",
                f"{at}.type",
                "invalid_value",
            )
        if extra:
            key = sorted(extra)[0]
            raise bad(
                f"Unrecognized request argument supplied: {at}.{key}",
                f"{at}.{key}",
                "unknown_parameter",
            )
        ids.append(call["id"])
    return ids


def check_messages(messages: Any, replay_reasoning: bool = False) -> None:
    if messages is None:
        raise bad(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise bad(
            f"Invalid type for 'messages': expected an array of objects, but got "
            f"{type_name(messages)} instead.",
            "messages",
            "invalid_type",
        )
    if not messages:
        raise bad(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
            "got an empty array instead.",
            "messages",
            "empty_array",
        )
    # Tool results must answer the tool calls of the assistant message right before them.
    pending: list[str] = []
    pending_at = -1
    in_tool_run = False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad(
                f"Invalid type for '{where}': expected an object, but got "
                f"{type_name(message)} instead.",
                where,
                "invalid_type",
            )
        role = message.get("role")
        if role not in MESSAGE_KEYS:
            raise bad(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                f"'user', 'function', 'tool', and 'developer'.",
                f"{where}.role",
                "invalid_value",
            )
        allowed = MESSAGE_KEYS[role] | (
            {"reasoning_content"} if replay_reasoning and role == "assistant" else set()
        )
        for key in message:
            if key not in allowed:
                raise bad(
                    f"Unrecognized request argument supplied: {where}.{key}",
                    f"{where}.{key}",
                    "unknown_parameter",
                )
        if role == "tool":
            if not in_tool_run:
                raise bad(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise bad(
                    f"Missing required parameter: '{where}.tool_call_id'.",
                    f"{where}.tool_call_id",
                    "missing_required_parameter",
                )
            if call_id not in pending:
                raise bad(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    f"'tool_calls' of previous message.",
                    f"messages.[{i}].tool_call_id",
                )
            pending.remove(call_id)
            check_content(message.get("content"), role, f"{where}.content", required=True)
            continue
        if pending:
            raise unanswered(pending, pending_at)
        in_tool_run = False
        if role == "assistant":
            calls = message.get("tool_calls")
            if replay_reasoning and calls and not isinstance(message.get("reasoning_content"), str):
                # DeepSeek V4 in thinking mode: a tool loop needs the earlier reasoning back.
                raise bad(
                    "The `reasoning_content` in the thinking mode must be passed back to the API."
                )
            if calls is not None:
                pending, pending_at, in_tool_run = (
                    check_tool_calls(calls, f"{where}.tool_calls"),
                    i,
                    True,
                )
            has_call = calls is not None or message.get("function_call") is not None
            check_content(message.get("content"), role, f"{where}.content", required=not has_call)
        elif role == "function":
            if not isinstance(message.get("name"), str):
                raise bad(
                    f"Missing required parameter: '{where}.name'.",
                    f"{where}.name",
                    "missing_required_parameter",
                )
        else:
            check_content(message.get("content"), role, f"{where}.content", required=True)
    if pending:
        raise unanswered(pending, pending_at)


def unanswered(pending: list[str], at: int) -> OpenAIError:
    return bad(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        f"messages.[{at}].role",
    )


def check_tools(body: dict[str, Any]) -> list[str]:
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise bad(
                f"Invalid type for 'tools': expected an array of objects, but got "
                f"{type_name(tools)} instead.",
                "tools",
                "invalid_type",
            )
        if not tools:
            raise bad(
                "Invalid 'tools': empty array. Expected an array with minimum length 1, but "
                "got an empty array instead.",
                "tools",
                "empty_array",
            )
        for i, tool in enumerate(tools):
            at = f"tools[{i}]"
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind == "function":
                fn = tool.get("function")
                allowed, inner, inner_allowed = (
                    {"type", "function"},
                    fn,
                    {"name", "description", "parameters", "strict"},
                )
            elif kind == "custom":
                fn = tool.get("custom")
                allowed, inner, inner_allowed = (
                    {"type", "custom"},
                    fn,
                    {"name", "description", "format"},
                )
            else:
                raise bad(
                    f"Invalid value: '{kind}'. Supported values are: 'function' and 'custom'.",
                    f"{at}.type",
                    "invalid_value",
                )
            if not isinstance(inner, dict):
                raise bad(
                    f"Missing required parameter: '{at}.{kind}'.",
                    f"{at}.{kind}",
                    "missing_required_parameter",
                )
            extra = sorted(set(tool) - allowed) or [
                f"{kind}.{k}" for k in sorted(set(inner) - inner_allowed)
            ]
            if extra:
                raise bad(
                    f"Unrecognized request argument supplied: {at}.{extra[0]}",
                    f"{at}.{extra[0]}",
                    "unknown_parameter",
                )
            name = inner.get("name")
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                raise bad(
                    f"Invalid '{at}.{kind}.name': string does not match pattern. Expected a "
                    f"string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    f"{at}.{kind}.name",
                    "invalid_value",
                )
            names.append(name)
    choice = body.get("tool_choice")
    if choice is not None:
        if not names:
            raise bad(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified.",
                "tool_choice",
            )
        if isinstance(choice, str):
            if choice not in ("none", "auto", "required"):
                raise bad(
                    f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and "
                    f"'required'.",
                    "tool_choice",
                    "invalid_value",
                )
        elif isinstance(choice, dict) and choice.get("type") == "function":
            wanted = (choice.get("function") or {}).get("name")
            if wanted not in names:
                raise bad(
                    f"Invalid value for 'tool_choice': function '{wanted}' is not among the "
                    f"'tools'.",
                    "tool_choice.function.name",
                    "invalid_value",
                )
        elif not (isinstance(choice, dict) and choice.get("type") in ("allowed_tools", "custom")):
            raise bad("Invalid value for 'tool_choice'.", "tool_choice", "invalid_value")
    if "parallel_tool_calls" in body and not names:
        raise bad(
            "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed "
            "when 'tools' are specified.",
            "parallel_tool_calls",
        )
    return names


def check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise bad(
            f"Invalid type for '{name}': expected a number, but got {type_name(value)} instead.",
            name,
            "invalid_type",
        )
    if value < low:
        raise bad(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, "
            f"but got {value} instead.",
            name,
            "decimal_below_min_value",
        )
    if value > high:
        raise bad(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, "
            f"but got {value} instead.",
            name,
            "decimal_above_max_value",
        )


def check_model_parameters(body: dict[str, Any], model: str) -> None:
    """What the real service answers when a parameter does not fit the model's kind."""
    if REASONING_MODEL.match(model):
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and value != 1:
                raise bad(
                    f"Unsupported value: '{name}' does not support {value} with this model. "
                    f"Only the default (1) value is supported.",
                    name,
                    "unsupported_value",
                )
        if body.get("max_tokens") is not None:
            raise bad(
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
    elif CLASSIC_MODEL.match(model) and body.get("reasoning_effort") is not None:
        raise bad(
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "reasoning_effort",
            "unsupported_parameter",
        )


def check_body(req: Request, azure: bool, models: set[str] | None) -> dict[str, Any]:
    body, error = req.json()
    if error is not None:
        raise bad(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)"
        )
    if not isinstance(body, dict):
        raise bad(
            f"Invalid type for request body: expected an object, but got {type_name(body)} instead."
        )
    for key in body:
        if key not in ALLOWED_PARAMS:
            raise bad(f"Unrecognized request argument supplied: {key}", key, "unknown_parameter")
    model = body.get("model")
    if model is None and not azure:
        raise bad("you must provide a model parameter", "model", "missing_required_parameter")
    if model is not None and (not isinstance(model, str) or not model):
        raise bad("Invalid type for 'model': expected a non-empty string.", "model", "invalid_type")
    if models is not None and model is not None and model not in models:
        raise OpenAIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            None,
            "model_not_found",
        )
    check_messages(body.get("messages"), REPLAY_MODEL.match(str(model or "")) is not None)
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise bad(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but "
                f"got {value!r} instead.",
                name,
                "integer_below_min_value",
            )
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        # Two limits that could disagree: the service makes the caller pick one.
        raise bad(
            "max_tokens and max_completion_tokens cannot both be set; use max_completion_tokens.",
            "max_tokens",
            "invalid_value",
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad(
            f"Invalid type for 'stream': expected a boolean, but got {type_name(stream)} instead.",
            "stream",
            "invalid_type",
        )
    options = body.get("stream_options")
    if options is not None:
        if stream is not True:
            raise bad(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        if not isinstance(options, dict):
            raise bad(
                "Invalid type for 'stream_options': expected an object.",
                "stream_options",
                "invalid_type",
            )
        for key, value in options.items():
            if key not in ("include_usage", "include_obfuscation"):
                raise bad(
                    f"Unrecognized request argument supplied: stream_options.{key}",
                    f"stream_options.{key}",
                    "unknown_parameter",
                )
            if not isinstance(value, bool):
                raise bad(
                    f"Invalid type for 'stream_options.{key}': expected a boolean.",
                    f"stream_options.{key}",
                    "invalid_type",
                )
    check_tools(body)
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 8):
        raise bad("n: this fake answers 1 to 8 choices.", "n", "invalid_value")
    top = body.get("top_logprobs")
    if top is not None and not body.get("logprobs"):
        raise bad(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used.",
            "top_logprobs",
        )
    check_number(body, "temperature", 0, 2)
    check_number(body, "top_p", 0, 1)
    check_number(body, "frequency_penalty", -2, 2)
    check_number(body, "presence_penalty", -2, 2)
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        supported = ", ".join(f"'{e}'" for e in sorted(REASONING_EFFORTS))
        raise bad(
            f"Invalid value: '{effort}'. Supported values are: {supported}.",
            "reasoning_effort",
            "invalid_value",
        )
    return body


# --- scripted answers -------------------------------------------------------------------------


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def pending_tool_result(body: dict[str, Any]) -> str | None:
    rest = [m for m in body["messages"] if m.get("role") not in ("system", "developer")]
    if rest and rest[-1].get("role") == "tool":
        return text_of(rest[-1].get("content"))
    return None


def tool_names(body: dict[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        inner = tool.get(tool.get("type"), {})
        names.append(inner.get("name"))
    return names


def plan(name: str, body: dict[str, Any], req: Request, n: int) -> dict[str, Any]:
    """What to answer: `text` (or None), `call` (name, arguments) or None, `finish`, `kind`
    (reply, fail, broken, midstream), `error`, `pace`."""
    unknown = bad(f"unknown mock scenario {name!r}", None, "invalid_value")
    result = pending_tool_result(body)
    text = fakekit.say(body) or fakekit.DEFAULT_TEXT
    out: dict[str, Any] = {
        "kind": "reply",
        "text": None,
        "call": None,
        "finish": "stop",
        "error": None,
        "pace": 0.0,
        "reasoning": None,
    }
    if name in ("text", "broken") or name.startswith("midstream-error"):
        out["text"] = text
        if name == "broken":
            out["kind"] = "broken"
        elif name != "text":
            spec = name[len("midstream-error") :].lstrip(":")
            err = (
                fakekit.parse_error_spec(spec)
                if spec
                else ApiError(
                    500,
                    "server_error",
                    ("The server had an error while processing your request. Sorry about that!"),
                )
            )
            if err is None:
                raise unknown
            out["kind"], out["error"] = "midstream", err
    elif name == "subagent":
        out["text"] = "Subagent report: all good."
    elif name == "thinking":
        # What vLLM, DeepSeek, Ollama and LM Studio do: reasoning as `reasoning_content` beside
        # the answer. Nothing of it may come back on a later turn: the real API refuses unknown
        # message members, and this fake does too.
        out["reasoning"] = f"The script for turn {n} says what to do next; following it."
        names = tool_names(body)
        if result is not None:
            out["text"] = f"tool result was: {result}"
        elif names:
            name0 = "Bash" if "Bash" in names else names[0]
            try:
                args = fakekit.BASH_INPUT if name0 == "Bash" else fakekit.tool_input(req.header)
            except ApiError as err:
                raise bad(err.message) from None
            out["call"], out["finish"] = (name0, args), "tool_calls"
        else:
            out["text"] = text
    elif name in ("tool", "bash", "agent"):
        if result is not None:
            out["text"] = {
                "tool": f"tool result was: {result}",
                "bash": f"Bash said: {result}",
                "agent": "Agent finished.",
            }[name]
        else:
            if name == "tool":
                names = tool_names(body)
                try:
                    args = fakekit.tool_input(req.header)
                except ApiError as err:
                    raise bad(err.message) from None
                out["call"] = (names[0] if names else "get_weather", args)
            elif name == "bash":
                out["call"] = ("Bash", fakekit.BASH_INPUT)
            else:
                out["call"] = ("Agent", fakekit.AGENT_INPUT)
            out["text"] = None if name == "agent" else "Let me check."
            out["finish"] = "tool_calls"
    elif name.startswith("error:"):
        err = fakekit.parse_error_spec(name[len("error:") :])
        if err is None:
            raise unknown
        out["kind"], out["error"] = "fail", err
    elif name.startswith("slow:"):
        try:
            out["pace"] = int(name[len("slow:") :].strip()) / 1000.0
        except ValueError:
            raise unknown from None
        out["text"] = text
    else:
        raise unknown
    return out


def openai_usage(u: fakekit.Usage) -> dict[str, Any]:
    # Like the real service, prompt_tokens counts cached and cache-written tokens too.
    prompt = u.input + u.cache_write + u.cache_read
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output,
        "total_tokens": prompt + u.output,
        "prompt_tokens_details": {
            "cached_tokens": u.cache_read,
            "cache_write_tokens": u.cache_write,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def scripted_error(err: ApiError) -> OpenAIError:
    headers = list(err.headers)
    if err.status == 429:
        headers += [("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "7s")]
    return OpenAIError(err.status, err.message, None, err.kind, kind=err.kind, headers=headers)


def completion(
    cid: str, model: str, created: int, p: dict[str, Any], usage: dict[str, Any]
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": p["text"],
        "refusal": None,
        "annotations": [],
    }
    if p["reasoning"]:
        message["reasoning_content"] = p["reasoning"]
    if p["call"]:
        message["tool_calls"] = [
            {
                "id": p["call_id"],
                "type": "function",
                "function": {"name": p["call"][0], "arguments": p["call"][1]},
            }
        ]
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": message,
                "logprobs": logprobs_for(p["text"] or "", p["top_logprobs"])
                if p["logprobs"]
                else None,
                "finish_reason": p["finish"],
            }
            for i in range(p["choices"])
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def logprobs_for(text: str, top: int) -> dict[str, Any]:
    """Made-up but well-formed log probabilities, one entry per word-ish token."""
    tokens = re.findall(r"\s*\S+", text) or [""]
    return {
        "content": [
            {
                "token": t,
                "logprob": -0.25 * (k + 1),
                "bytes": list(t.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": -0.25 * (k + 1), "bytes": list(t.encode())}
                ][:top],
            }
            for k, t in enumerate(tokens)
        ],
        "refusal": None,
    }


def chunks(
    cid: str,
    model: str,
    created: int,
    p: dict[str, Any],
    usage: dict[str, Any],
    include_usage: bool,
) -> list[bytes]:
    def chunk(
        delta: dict[str, Any] | None, finish: str | None = None, with_usage: bool = False
    ) -> bytes:
        piece = (delta or {}).get("content")
        logprobs = (
            logprobs_for(piece, p["top_logprobs"]) if p["logprobs"] and piece else None
        )
        data: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": []
            if delta is None
            else [
                {"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
                for i in range(p["choices"])
            ],
        }
        if include_usage:
            data["usage"] = usage if with_usage else None
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    text_pieces = fakekit.pieces(p["text"] or "", 2)
    if p["kind"] in ("broken", "midstream"):
        out.append(chunk({"content": text_pieces[0] if text_pieces else ""}))
        if p["kind"] == "midstream":
            err = p["error"]
            out.append(
                b"data: "
                + json.dumps(
                    {
                        "error": {
                            "message": err.message,
                            "type": err.kind,
                            "param": None,
                            "code": None,
                        }
                    }
                ).encode()
                + b"\n\n"
            )
        return out
    reasoning = fakekit.pieces(p["reasoning"] or "", 2)
    out += [chunk({"reasoning_content": piece}) for piece in reasoning]
    out += [chunk({"content": piece}) for piece in text_pieces]
    if p["call"]:
        name, arguments = p["call"]
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": p["call_id"],
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        out += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in fakekit.pieces(arguments, 3)
        ]
    out.append(chunk({}, p["finish"]))
    if include_usage:
        out.append(chunk(None, with_usage=True))
    out.append(b"data: [DONE]\n\n")
    return out


def authenticate(req: Request, key: str, azure: bool) -> None:
    if azure:
        given = req.header("api-key")
        if given is None or not hmac.compare_digest(given, key):
            raise AzureError(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API "
                "endpoint. Make sure to provide a valid key for an active subscription "
                "and use a correct regional API endpoint for your resource.",
            )
        return
    value = req.header("authorization")
    if value is None or not value.startswith("Bearer "):
        raise OpenAIError(
            401,
            "You didn't provide an API key. You need to provide your API key in "
            "an Authorization header using Bearer auth (i.e. Authorization: Bearer "
            "YOUR_KEY).",
        )
    given = value[7:].strip()
    if not hmac.compare_digest(given, key):
        raise OpenAIError(
            401, f"Incorrect API key provided: {given[:3]}***{given[-4:]}.", None, "invalid_api_key"
        )


def make_app(args: argparse.Namespace):
    models = set(args.model) if args.model else None

    def chat(req: Request, record: dict[str, Any], azure_deployment: str | None):
        azure = azure_deployment is not None
        if azure:
            version = (req.query.get("api-version") or [""])[0]
            if not version:
                raise AzureError(404, "404", "Resource not found")
            if not API_VERSION.match(version):
                raise AzureError(400, "BadRequest", "API version not supported")
        authenticate(req, args.api_key, azure)
        body = check_body(req, azure, models)
        check_model_parameters(body, body.get("model") or azure_deployment or "")
        name = fakekit.scenario_name(req.header, body)
        record["scenario"] = name
        try:
            usage = fakekit.usage_for(req.header, req.body, CACHE_MARKERS)
        except ApiError as err:
            raise bad(err.message) from None
        p = plan(name, body, req, record["n"])
        if p["kind"] == "fail" or (p["kind"] == "midstream" and not body.get("stream")):
            return scripted_error(p["error"]).response()
        p["call_id"] = f"call_mock_{record['n']}"
        p["choices"] = body.get("n") or 1
        p["logprobs"] = bool(body.get("logprobs"))
        p["top_logprobs"] = body.get("top_logprobs") or 0
        cid = f"chatcmpl-mock{record['n']}"
        model = body.get("model") or azure_deployment
        created = int(time.time())
        answered = openai_usage(usage)
        headers = [("x-request-id", f"req_mock_{record['n']}"), ("openai-processing-ms", "1")]
        record["usage"] = answered
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            # Whether the client was told the usage: only a complete stream with include_usage.
            record["usage_reported"] = include_usage and p["kind"] == "reply"
            return Stream(
                200,
                fakekit.paced(chunks(cid, model, created, p, answered, include_usage), p["pace"]),
                [
                    ("Content-Type", "text/event-stream; charset=utf-8"),
                    ("Cache-Control", "no-cache"),
                ]
                + headers,
                abort=p["kind"] == "broken",
            )
        if p["kind"] == "broken":
            record["usage"] = None
            return Drop()
        record["usage_reported"] = True
        if p["pace"]:
            time.sleep(p["pace"])
        return fakekit.json_response(200, completion(cid, model, created, p, answered), headers)

    def app(req: Request, record: dict[str, Any]):
        try:
            azure = AZURE_PATH.match(req.path)
            if req.method == "POST" and req.path == "/v1/chat/completions":
                return chat(req, record, None)
            if req.method == "POST" and azure:
                return chat(req, record, azure.group(1))
            if req.method == "GET" and req.path == "/v1/models":
                authenticate(req, args.api_key, False)
                record["scenario"] = "models"
                return fakekit.json_response(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": m,
                                "object": "model",
                                "created": 1767225600,
                                "owned_by": "openai",
                            }
                            for m in sorted(models or DEFAULT_MODELS)
                        ],
                    },
                )
            raise OpenAIError(404, f"Invalid URL ({req.method} {req.path})")
        except (OpenAIError, AzureError) as err:
            record["scenario"] = "rejected"
            record["error"] = err.message
            sys.stderr.write(f"openai-fake: rejected {req.method} {req.target}: {err.message}\n")
            return err.response()

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-key", required=True)
    parser.add_argument(
        "--model",
        action="append",
        metavar="ID",
        help="accept only these models (repeatable; default: any)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = parser.parse_args(argv)
    return fakekit.serve(make_app(args), args.host, args.port, "openai-fake", args.quiet)


if __name__ == "__main__":
    sys.exit(main())
