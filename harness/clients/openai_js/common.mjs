// What the OpenAI contract clients on Node share: the plan, settings, output lines, error text.
// The contract is harness/clients/contract.py's; the request bodies mirror harness/clients/openai_contract.py.

import { readFileSync } from 'node:fs';

export function readPlan() {
  // A plan too large for the environment comes in a file (see harness/clients/contract.py).
  return JSON.parse(process.env.STREAMCHAOS_PLAN || readFileSync(process.env.STREAMCHAOS_PLAN_FILE, 'utf8'));
}

// "chat" (the default) or "responses": the plan's api; a Messages plan is spoken as chat.
export function apiOf(plan) {
  return plan.api === 'responses' ? 'responses' : 'chat';
}

// The environment's value if set, else the plan's.
export function setting(plan, envName, key) {
  if (process.env[envName] !== undefined) return process.env[envName];
  const value = plan[key];
  return value === undefined || value === null ? undefined : value;
}

export function maxRetries(plan) {
  const retries = setting(plan, 'STREAMCHAOS_MAX_RETRIES', 'max_retries');
  if (retries === undefined) return undefined;
  const n = Number(retries);
  if (!Number.isInteger(n)) throw new Error(`max_retries: not an integer: ${JSON.stringify(retries)}`);
  return n;
}

export function timeoutMs(plan) {
  const timeout = setting(plan, 'STREAMCHAOS_TIMEOUT_S', 'timeout_s');
  if (timeout === undefined) return undefined;
  const seconds = Number(timeout);
  if (!Number.isFinite(seconds)) throw new Error(`timeout_s: not a number: ${JSON.stringify(timeout)}`);
  return Math.round(seconds * 1000);
}

export function maxTokens(plan, turn) {
  return turn.max_tokens ?? plan.max_tokens ?? 1024;
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

// "<name>: <message>", then the chain of causes: "TypeError: terminated (cause: other side closed)".
export function describeError(error) {
  if (!(error instanceof Error)) return `Error: ${String(error)}`;
  const causes = [];
  const seen = new Set([error]);
  for (let cause = error.cause; cause != null && !seen.has(cause); cause = cause.cause) {
    seen.add(cause);
    const text = cause instanceof Error ? cause.message || cause.code || cause.name : String(cause);
    if (text) causes.push(text);
    if (!(cause instanceof Error)) break;
  }
  const name = error.name && error.name !== 'Error' ? error.name : error.code || error.name || 'Error';
  const head = `${name}: ${error.message}`;
  return causes.length ? `${head} (cause: ${causes.join(': ')})` : head;
}

// Resolves once the line is handed to the OS: process.exit() drops what is still buffered.
export function emit(value) {
  return new Promise((resolve, reject) => {
    process.stdout.write(JSON.stringify(value) + '\n', (error) => (error ? reject(error) : resolve()));
  });
}

export function sleep(seconds) {
  return seconds > 0 ? new Promise((resolve) => setTimeout(resolve, seconds * 1000)) : Promise.resolve();
}

// Runs the plan: ask(api, turn, history, pending, prompt) -> {line, next: {history, pending}}.
export async function runPlan(plan, ask) {
  let history = [];
  let pending = [];
  for (const [index, turn] of plan.turns.entries()) {
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
