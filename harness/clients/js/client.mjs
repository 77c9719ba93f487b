// The official TypeScript SDK (@anthropic-ai/sdk) as a contract client, for Node and for Bun.
//
// Same contract as harness/clients/programs/python_sdk_client.py: reads the conversation from STREAMCHAOS_SCRIPT,
// performs it with `client.messages.stream(...).finalMessage()` (stream, the default) or
// `client.messages.create(...)`, prints one JSON line per turn and exits 0. On an error it prints
// {"turn": i, "error": "<name>: <message> (cause: <message>: ...)"} and exits 1. The SDK reads
// ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL itself; the script's `max_retries` and `timeout_s` (seconds),
// or STREAMCHAOS_MAX_RETRIES / STREAMCHAOS_TIMEOUT_S (the environment wins), override its defaults.
// A turn's `idle_before_s` is slept first (a tool running between turns); `parallel: N` sends N
// requests at once (parts of one turn, each its own conversation whose prompt ends with
// "\n(part k of N)"), prints a line per part with "part": k (in part order, once all have finished)
// and exits 1 if any failed; the conversation goes on with part 0. The transport is the runtime's
// own fetch: undici on Node, Bun's on Bun (h2 there only with BUN_FEATURE_FLAG_EXPERIMENTAL_HTTP2_CLIENT=1).

import Anthropic from '@anthropic-ai/sdk';
import { describeError, emit, readScript, sleep } from './script.mjs';

// The environment's value if set, else the script's (as the Python client's os.environ.get(name, script[key])).
function setting(script, envName, key) {
  if (process.env[envName] !== undefined) return process.env[envName];
  const value = script[key];
  return value === undefined || value === null ? undefined : value;
}

function makeClient(script) {
  const options = {};
  const retries = setting(script, 'STREAMCHAOS_MAX_RETRIES', 'max_retries');
  if (retries !== undefined) {
    const n = Number(retries);
    if (!Number.isInteger(n)) throw new Error(`max_retries: not an integer: ${JSON.stringify(retries)}`);
    options.maxRetries = n;
  }
  const timeout = setting(script, 'STREAMCHAOS_TIMEOUT_S', 'timeout_s');
  if (timeout !== undefined) {
    const seconds = Number(timeout);
    if (!Number.isFinite(seconds)) throw new Error(`timeout_s: not a number: ${JSON.stringify(timeout)}`);
    options.timeout = Math.round(seconds * 1000);
  }
  return new Anthropic(options);
}

function summarize(turn, message, started) {
  const blocks = message.content;
  return {
    turn,
    stop_reason: message.stop_reason,
    text: blocks.filter((b) => b.type === 'text').map((b) => b.text).join(''),
    thinking: blocks.filter((b) => b.type === 'thinking').map((b) => b.thinking).join(''),
    tool_uses: blocks.filter((b) => b.type === 'tool_use').map((b) => ({ id: b.id, name: b.name, input: b.input })),
    usage: { input_tokens: message.usage.input_tokens, output_tokens: message.usage.output_tokens },
    elapsed_ms: Math.round((performance.now() - started) * 10) / 10,
  };
}

function requestArgs(script, turn, messages) {
  const args = {
    model: script.model ?? 'claude-sonnet-4-6',
    max_tokens: turn.max_tokens ?? script.max_tokens ?? 1024,
    messages,
  };
  if (turn.thinking) args.thinking = { type: 'enabled', budget_tokens: 1024 };
  if (turn.tools && turn.tools.length) args.tools = turn.tools;
  if (turn.tool_choice) args.tool_choice = turn.tool_choice;
  return args;
}

// A returned block as the next request carries it: its own fields, none of the null ones
// (what pydantic's model_dump(exclude_none=True) gives the Python client).
function blockParam(block) {
  return Object.fromEntries(Object.entries(block).filter(([, value]) => value !== null && value !== undefined));
}


async function ask(client, args, stream) {
  if (stream) return client.messages.stream(args).finalMessage();
  return client.messages.create(args);
}

async function main() {
  const script = readScript();
  const client = makeClient(script);
  let messages = [];
  let pendingToolResults = [];
  for (const [index, turn] of script.turns.entries()) {
    await sleep(Number(turn.idle_before_s ?? 0));
    const parts = Number.parseInt(turn.parallel ?? 1, 10);
    const conversations = [];
    for (let part = 0; part < parts; part += 1) {
      const prompt = parts === 1 ? turn.prompt : `${turn.prompt}\n(part ${part + 1} of ${parts})`;
      conversations.push([...messages, { role: 'user', content: [...pendingToolResults, { type: 'text', text: prompt }] }]);
    }
    const started = performance.now();
    // Every part starts before any is awaited; each settles on its own (the contract reports every
    // failure the same way).
    const outcomes = await Promise.allSettled(
      conversations.map((conversation) => ask(client, requestArgs(script, turn, conversation), turn.stream ?? true)),
    );
    const lines = outcomes.map((outcome) =>
      outcome.status === 'fulfilled'
        ? summarize(index, outcome.value, started)
        : { turn: index, error: describeError(outcome.reason) },
    );
    for (const [part, line] of lines.entries()) {
      if (parts > 1) line.part = part;
      await emit(line);
    }
    if (outcomes.some((outcome) => outcome.status === 'rejected')) return 1;
    const message = outcomes[0].value;
    messages = [...conversations[0], { role: 'assistant', content: message.content.map(blockParam) }];
    pendingToolResults = message.content
      .filter((b) => b.type === 'tool_use')
      .map((b) => ({ type: 'tool_result', tool_use_id: b.id, content: 'ok' }));
  }
  return 0;
}

const code = await main().catch(async (error) => {
  await emit({ turn: -1, error: describeError(error) });
  return 1;
});
// Exit at once: a pooled keep-alive connection (or Bun's h2 session) must not hold the process open.
process.exit(code);
