// The client side of the contract (harness/clients/script.py in JavaScript), shared by
// harness/clients/js/client.mjs and harness/clients/openai_js/: reading the script, the error text,
// one JSON line out, sleeping. The harness side is harness/clients/launch.py.

import { readFileSync } from 'node:fs';

export function readScript() {
  // A script too large for the environment comes in a file (see harness/clients/launch.py).
  return JSON.parse(process.env.STREAMCHAOS_SCRIPT || readFileSync(process.env.STREAMCHAOS_SCRIPT_FILE, 'utf8'));
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

// Resolves once the line is handed to the OS: process.exit() drops what is still buffered (Bun does
// with a pipe past 64 KiB).
export function emit(value) {
  return new Promise((resolve, reject) => {
    process.stdout.write(JSON.stringify(value) + '\n', (error) => (error ? reject(error) : resolve()));
  });
}

export function sleep(seconds) {
  return seconds > 0 ? new Promise((resolve) => setTimeout(resolve, seconds * 1000)) : Promise.resolve();
}
