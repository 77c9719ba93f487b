// The official OpenAI SDK for TypeScript (npm `openai`) as a streamchaos contract client, on Node.
//
// Same contract as harness/clients/programs/openai_python_client.py: the script's `api` picks Chat Completions
// (`client.chat.completions.stream(...).finalChatCompletion()`, or `create` when a turn does not
// stream) or Responses (`client.responses.stream(...).finalResponse()`, or `create`): the SDK's own
// accumulators. One JSON line per turn, exit 0; on an error {"turn": i, "error": "<name>: <message>
// (cause: ...)"} and exit 1. The SDK reads OPENAI_BASE_URL and OPENAI_API_KEY itself; the script's
// `max_retries` and `timeout_s` (or STREAMCHAOS_MAX_RETRIES / STREAMCHAOS_TIMEOUT_S) override its
// defaults. The transport is Node's fetch (undici), HTTP/1.1.

import OpenAI from 'openai';
import { apiOf, main, maxRetries, maxTokens, parseArguments, readScript, runScript, timeoutMs } from './common.mjs';

const CHAT_FINISH = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', function_call: 'tool_use' };

function chatTools(turn) {
  return (turn.tools ?? []).map((t) => ({ type: 'function', function: { name: t.name, description: t.description ?? '', parameters: t.input_schema ?? {} } }));
}

function responsesTools(turn) {
  return (turn.tools ?? []).map((t) => ({ type: 'function', name: t.name, description: t.description ?? '', parameters: t.input_schema ?? {}, strict: false }));
}

async function askChat(client, script, turn, history, pending, prompt) {
  const messages = [...history, ...pending, { role: 'user', content: prompt }];
  const args = { model: script.model ?? 'gpt-5', messages, max_completion_tokens: maxTokens(script, turn) };
  if (turn.tools?.length) args.tools = chatTools(turn);
  const completion = (turn.stream ?? true)
    ? await client.chat.completions.stream({ ...args, stream_options: { include_usage: true } }).finalChatCompletion()
    : await client.chat.completions.create(args);
  const choice = completion.choices[0];
  const calls = choice.message.tool_calls ?? [];
  const assistant = { role: 'assistant', content: choice.message.content ?? null };
  if (calls.length) assistant.tool_calls = calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }));
  return {
    line: {
      stop_reason: CHAT_FINISH[choice.finish_reason] ?? choice.finish_reason,
      text: choice.message.content ?? '',
      thinking: '',
      tool_uses: calls.map((c) => ({ id: c.id, name: c.function.name, input: parseArguments(c.function.arguments) })),
      usage: { input_tokens: completion.usage?.prompt_tokens ?? null, output_tokens: completion.usage?.completion_tokens ?? null },
    },
    next: {
      history: [...messages, assistant],
      pending: calls.map((c) => ({ role: 'tool', tool_call_id: c.id, content: 'ok' })),
    },
  };
}

async function askResponses(client, script, turn, history, pending, prompt) {
  const input = [...history, ...pending, { role: 'user', content: prompt }];
  const args = { model: script.model ?? 'gpt-5', input, max_output_tokens: maxTokens(script, turn) };
  if (turn.tools?.length) args.tools = responsesTools(turn);
  const response = (turn.stream ?? true) ? await client.responses.stream(args).finalResponse() : await client.responses.create(args);
  const calls = response.output.filter((item) => item.type === 'function_call');
  const text = response.output_text ?? '';
  const stop = response.status === 'incomplete' ? 'max_tokens' : calls.length ? 'tool_use' : 'end_turn';
  return {
    line: {
      stop_reason: stop,
      text,
      thinking: '',
      tool_uses: calls.map((c) => ({ id: c.call_id, name: c.name, input: parseArguments(c.arguments) })),
      usage: { input_tokens: response.usage?.input_tokens ?? null, output_tokens: response.usage?.output_tokens ?? null },
    },
    next: {
      history: [...input, ...(text ? [{ role: 'assistant', content: text }] : []),
        ...calls.map((c) => ({ type: 'function_call', call_id: c.call_id, name: c.name, arguments: c.arguments }))],
      pending: calls.map((c) => ({ type: 'function_call_output', call_id: c.call_id, output: 'ok' })),
    },
  };
}

await main(async () => {
  const script = readScript();
  const options = {};
  const retries = maxRetries(script);
  if (retries !== undefined) options.maxRetries = retries;
  const timeout = timeoutMs(script);
  if (timeout !== undefined) options.timeout = timeout;
  const client = new OpenAI(options);
  const ask = apiOf(script) === 'responses' ? askResponses : askChat;
  return runScript(script, (turn, history, pending, prompt) => ask(client, script, turn, history, pending, prompt));
});
