// Open a report.html in headless Chromium as a new user would and say what happened, as JSON.
// usage: node check_report.mjs REPORT.html [SCREENSHOT_DIR [SCENARIO]]  (SCENARIO: whose section to screenshot)
// Prints {cells, rows, columns, skipped, consoleErrors, pageErrors, requests, outside, dialog, ...}.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [report, shots, sectionId] = process.argv.slice(2);
if (!report) {
  console.error('usage: node check_report.mjs REPORT.html [SCREENSHOT_DIR]');
  process.exit(2);
}
const url = pathToFileURL(resolve(report)).href;
const profile = mkdtempSync(join(tmpdir(), `streamchaos-chromium-${process.pid}-`));
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];  // --user-data-dir=<profile>: playwright passes it from userDataDir
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: flags, viewport: { width: 1400, height: 900 },
  timeout: 60000,
});
const out = { url, consoleErrors: [], pageErrors: [], requests: [], outside: [] };
const timer = setTimeout(() => { console.error('check_report: timed out'); process.exit(3); }, 90000);
try {
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.consoleErrors.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('request', (r) => {
    out.requests.push(r.url());
    if (r.url() !== url && !r.url().startsWith('data:')) out.outside.push(r.url());
  });
  // Anything not this file fails, so a stray fetch shows as an outside request and a console error.
  await context.route((u) => u.href !== url && !u.href.startsWith('data:'), (route) => route.abort());
  await page.goto(url, { waitUntil: 'load' });
  const matrix = await page.evaluate(() => {
    const table = document.querySelector('table.matrix');
    const rows = [...table.querySelectorAll('tbody tr')];
    return {
      rows: rows.map((r) => r.querySelector('th').textContent.trim()),
      columns: [...table.querySelectorAll('thead th.col')].map((th) => th.getAttribute('title')).filter((t) => t),
      cells: rows.map((r) => [...r.querySelectorAll('td.cell')].length),
      skipped: [...table.querySelectorAll('td.skip')].map((td) => td.getAttribute('title')),
      rates: [...table.querySelectorAll('tbody td.cell[data-rate]')].length,
      svgs: document.querySelectorAll('svg.plot').length,
      trialLinks: document.querySelectorAll('a.trial').length,
      firstIsMatrix: document.querySelector('h2').id === 'matrix',
    };
  });
  Object.assign(out, matrix);
  if (shots) await page.screenshot({ path: join(shots, 'report-matrix.png'), clip: { x: 0, y: 0, width: 1400, height: 900 } });
  if (shots) {
    const section = await page.$(sectionId ? `section#s-${sectionId}` : 'section.scenario:has(svg.plot)');
    if (section) { await section.scrollIntoViewIfNeeded(); await section.screenshot({ path: join(shots, 'report-scenario.png') }); }
  }
  const link = await page.$(process.env.TRIAL_KEY ? `a.trial[data-key="${process.env.TRIAL_KEY}"]` : 'a.trial');
  if (link) {
    out.trialKey = await link.getAttribute('data-key');
    await link.click();
    await page.waitForSelector('dialog#trial[open] svg.timeline', { timeout: 10000 });
    out.dialog = await page.evaluate(() => {
      const d = document.querySelector('dialog#trial');
      return { open: d.open, key: d.getAttribute('data-key'), attempts: d.querySelectorAll('rect.attempt').length,
        faults: d.querySelectorAll('.fault').length, text: d.textContent.slice(0, 2000), hash: location.hash };
    });
    if (shots) await page.screenshot({ path: join(shots, 'report-trial.png') });
  }
  await page.waitForTimeout(300);
} finally {
  clearTimeout(timer);
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
