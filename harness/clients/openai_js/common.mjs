// What the OpenAI contract clients on Node share: the script, settings, output lines, error text.
// The contract is harness/clients/launch.py's; the request bodies mirror harness/clients/openai_script.py.

import { describeError, emit, readScript, sleep } from '../js/script.mjs';

export { readScript };

// "chat" (the default) or "responses": the script's api; a Messages script is spoken as chat.
export function apiOf(script) {
  return script.api === 'responses' ? 'responses' : 'chat';
}

// The environment's value if set, else the script's.
export function setting(script, envName, key) {
  if (process.env[envName] !== undefined) return process.env[envName];
  const value = script[key];
  return value === undefined || value === null ? undefined : value;
}

export function maxRetries(script) {
  const retries = setting(script, 'STREAMCHAOS_MAX_RETRIES', 'max_retries');
  if (retries === undefined) return undefined;
  const n = Number(retries);
  if (!Number.isInteger(n)) throw new Error(`max_retries: not an integer: ${JSON.stringify(retries)}`);
  return n;
}

export function timeoutMs(script) {
  const timeout = setting(script, 'STREAMCHAOS_TIMEOUT_S', 'timeout_s');
  if (timeout === undefined) return undefined;
  const seconds = Number(timeout);
  if (!Number.isFinite(seconds)) throw new Error(`timeout_s: not a number: ${JSON.stringify(timeout)}`);
  return Math.round(seconds * 1000);
}

export function maxTokens(script, turn) {
  return turn.max_tokens ?? script.max_tokens ?? 1024;
}

export function partPrompts(turn) {
  const parts = Number.parseInt(turn.parallel ?? 1, 10);
  const prompts = [];
  for (let part = 0; part < parts; part += 1) prompts.push(parts === 1 ? turn.prompt : `${turn.prompt}\n(part ${part + 1} of ${parts})`);
  return prompts;
}

export function parseArguments(text) {
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return text;
  }
}


// Runs the script: ask(api, turn, history, pending, prompt) -> {line, next: {history, pending}}.
export async function runScript(script, ask) {
  let history = [];
  let pending = [];
  for (const [index, turn] of script.turns.entries()) {
    await sleep(Number(turn.idle_before_s ?? 0));
    const prompts = partPrompts(turn);
    const started = performance.now();
    const outcomes = await Promise.allSettled(prompts.map((prompt) => ask(turn, history, pending, prompt)));
    for (const [part, outcome] of outcomes.entries()) {
      const line = outcome.status === 'fulfilled'
        ? { turn: index, ...outcome.value.line, elapsed_ms: Math.round((performance.now() - started) * 10) / 10 }
        : { turn: index, error: describeError(outcome.reason) };
      if (prompts.length > 1) line.part = part;
      await emit(line);
    }
    if (outcomes.some((outcome) => outcome.status === 'rejected')) return 1;
    ({ history, pending } = outcomes[0].value.next);
  }
  return 0;
}

export async function main(body) {
  const code = await body().catch(async (error) => {
    await emit({ turn: -1, error: describeError(error) });
    return 1;
  });
  // Exit at once: a pooled keep-alive connection must not hold the process open.
  process.exit(code);
}
