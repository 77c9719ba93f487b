// The Vercel AI SDK (npm `ai` with `@ai-sdk/openai`) as a streamchaos contract client, on Node.
//
// The script's `api` picks the provider's model: `openai.chat(model)` (Chat Completions) or
// `openai.responses(model)` (Responses). A streaming turn uses `streamText` and awaits its
// `text`, `finishReason`, `toolCalls` and `totalUsage` (the SDK's own accumulation); a turn with
// `stream: false` uses `generateText`. Tools are declared without `execute`, so a tool call ends the
// step and is printed; the next turn sends its result. A transport error makes the awaited results
// reject; an error event in the stream reaches `onError` and finishes the step with finishReason
// "error" (the text resolves, partial); either way the client prints {"turn": i, "error": ...}, exit 1.
// Base URL and key: OPENAI_BASE_URL and OPENAI_API_KEY (read by createOpenAI); `max_retries` goes
// to the SDK's `maxRetries` (its own retry loop: 2 retries, 2 s then 4 s, retry-after honoured up
// under 60 s); `timeout_s` becomes the SDK's `timeout` option (firstChunkMs and chunkMs for a
// stream, stepMs otherwise; both start once the response headers are in); by default the SDK has
// no timeout. STREAMCHAOS_STREAM_RETRIES=N sets `streamRetries` (off by default): the SDK then
// retries provider errors that arrive after the stream started.

import { generateText, jsonSchema, streamText, tool } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { apiOf, main, maxRetries, maxTokens, parseArguments, readScript, runScript, timeoutMs } from './common.mjs';

const FINISH = { stop: 'end_turn', length: 'max_tokens', 'tool-calls': 'tool_use' };

function tools(turn) {
  if (!turn.tools?.length) return undefined;
  return Object.fromEntries(turn.tools.map((t) => [t.name, tool({ description: t.description ?? '', inputSchema: jsonSchema(t.input_schema ?? { type: 'object' }) })]));
}

async function ask(model, script, turn, history, pending, prompt) {
  const messages = [...history, ...(pending.length ? [{ role: 'tool', content: pending }] : []), { role: 'user', content: prompt }];
  const options = { model, messages, maxOutputTokens: maxTokens(script, turn) };
  const retries = maxRetries(script);
  if (retries !== undefined) options.maxRetries = retries;
  const timeout = timeoutMs(script);
  // The SDK's own timeouts (none by default): for a stream, until the first chunk and between
  // chunks (a read timeout's analogue); for generateText, per step.
  if (timeout !== undefined) options.timeout = (turn.stream ?? true) ? { firstChunkMs: timeout, chunkMs: timeout } : { stepMs: timeout };
  // streamRetries: the SDK's opt-in retry of provider errors received after the stream started (default: off)
  if (process.env.STREAMCHAOS_STREAM_RETRIES) options.streamRetries = Number(process.env.STREAMCHAOS_STREAM_RETRIES);
  const declared = tools(turn);
  if (declared) options.tools = declared;
  let result;
  if (turn.stream ?? true) {
    // An error part in the stream (an in-stream error event) reaches onError and ends the step with
    // finishReason "error" while `text` resolves to the partial text; a transport error rejects.
    // With streamRetries, onError sees the error and the retried stream may still finish: only the
    // finish reason says which.
    let streamError;
    const stream = streamText({ ...options, onError: ({ error }) => { streamError = error; } });
    try {
      const [text, finishReason, toolCalls, usage] = await Promise.all([stream.text, stream.finishReason, stream.toolCalls, stream.totalUsage]);
      result = { text, finishReason, toolCalls, usage };
    } catch (error) {
      throw streamError ?? error;
    }
    if ((result.finishReason?.unified ?? result.finishReason) === 'error') throw streamError ?? new Error('the stream finished with finishReason "error"');
  } else {
    const out = await generateText(options);
    result = { text: out.text, finishReason: out.finishReason, toolCalls: out.toolCalls, usage: out.totalUsage ?? out.usage };
  }
  const calls = result.toolCalls ?? [];
  const assistant = { role: 'assistant', content: [
    ...(result.text ? [{ type: 'text', text: result.text }] : []),
    ...calls.map((c) => ({ type: 'tool-call', toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })),
  ] };
  return {
    line: {
      stop_reason: FINISH[result.finishReason?.unified ?? result.finishReason] ?? result.finishReason,
      text: result.text,
      thinking: '',
      tool_uses: calls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: typeof c.input === 'string' ? parseArguments(c.input) : c.input })),
      usage: { input_tokens: result.usage?.inputTokens ?? null, output_tokens: result.usage?.outputTokens ?? null },
    },
    next: {
      history: [...messages, assistant],
      pending: calls.map((c) => ({ type: 'tool-result', toolCallId: c.toolCallId, toolName: c.toolName, output: { type: 'text', value: 'ok' } })),
    },
  };
}

await main(async () => {
  const script = readScript();
  const provider = createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY });
  const name = script.model ?? 'gpt-5';
  const model = apiOf(script) === 'responses' ? provider.responses(name) : provider.chat(name);
  return runScript(script, (turn, history, pending, prompt) => ask(model, script, turn, history, pending, prompt));
});
