#!/usr/bin/env node
// End-to-end check of the Mizugiwa dashboard in the machine's Debian Chromium (no browser
// download: playwright-core only drives /usr/bin/chromium).
//
//   node tests/dashboard.mjs --url http://127.0.0.1:PORT --user U --password P \
//        --alert ALERT_ID --site SITE --screenshot OUT.png
//
// Logs in, waits for the map (window.mzMapLoaded), the SITE row and a live SSE connection,
// acknowledges ALERT_ID and waits until its row shows data-status=acknowledged (which the page
// only sets from the server's SSE echo), then takes a full-page screenshot. Fails on any
// console error, page error, failed/4xx/5xx request, or any request to a non-loopback host.
//
// Optional: --chromium PATH (default /usr/bin/chromium, or $CHROMIUM), --timeout MS (default
// 30000 per step), --headed.

import { chromium } from 'playwright-core';
import process from 'node:process';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`);
    const key = a.slice(2);
    if (key === 'headed') { out.headed = true; continue; }
    if (i + 1 >= argv.length) throw new Error(`missing value for --${key}`);
    out[key] = argv[++i];
  }
  return out;
}

const USAGE = 'usage: node tests/dashboard.mjs --url URL --user U --password P --alert ALERT_ID --site SITE --screenshot OUT.png';

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
  for (const k of ['url', 'user', 'password', 'alert', 'site', 'screenshot']) {
    if (!opts[k]) throw new Error(`missing --${k}`);
  }
} catch (err) {
  console.error(`dashboard test: ${err.message}\n${USAGE}`);
  process.exit(2);
}

const TIMEOUT = Number(opts.timeout ?? 30_000);
const CHROMIUM = opts.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

// WebGL without a GPU: Chromium's ANGLE on SwiftShader (software). Since Chromium ~137 the
// automatic fallback to SwiftShader for WebGL is gone, so it has to be asked for explicitly
// with --enable-unsafe-swiftshader; --use-angle=swiftshader picks the software backend.
const LAUNCH_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
];

const problems = []; // everything that makes the run fail, in order of appearance
const requests = [];
let step = 'start';
const t0 = Date.now();
const verbose = !!process.env.MZ_E2E_VERBOSE;
function setStep(s) {
  step = s;
  if (verbose) console.error(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`);
}

function isLoopbackUrl(u) {
  let url;
  try { url = new URL(u); } catch { return false; }
  // Requests that never touch the network.
  if (['data:', 'blob:', 'about:'].includes(url.protocol)) return true;
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) return false;
  return LOOPBACK.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: !opts.headed, args: LAUNCH_ARGS });
  try {
    const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, serviceWorkers: 'block' });

    // Record every request from every page/worker in the context; anything off-machine is
    // both blocked (so the run never leaks) and reported as a failure.
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (isLoopbackUrl(u)) return route.continue();
      problems.push(`request to non-loopback host: ${u}`);
      return route.abort('blockedbyclient');
    });
    context.on('request', (req) => {
      requests.push(req.url());
      if (!isLoopbackUrl(req.url())) problems.push(`request to non-loopback host: ${req.url()}`);
    });
    context.on('requestfailed', (req) => {
      const why = req.failure()?.errorText ?? 'failed';
      // The SSE stream is cut when the page closes; that is not a page fault.
      if (why.includes('ERR_ABORTED') && new URL(req.url()).pathname === '/api/events') return;
      problems.push(`request failed (${why}): ${req.method()} ${req.url()}`);
    });
    context.on('response', (res) => {
      if (res.status() >= 400) problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
    });

    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('dialog', (d) => d.dismiss()); // no prompt is expected; never hang on one

    const base = opts.url.replace(/\/+$/, '');
    setStep(`open ${base}/`);
    await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });

    setStep('log in');
    await page.fill('#login-user', opts.user);
    await page.fill('#login-password', opts.password);
    await page.click('#login-submit');
    await page.waitForSelector('#login', { state: 'hidden' });

    setStep('wait for the map (window.mzMapLoaded)');
    await page.waitForFunction(() => window.mzMapLoaded === true);

    setStep(`wait for site row "${opts.site}"`);
    const siteRow = page.locator(`[data-testid=site-row][data-site="${cssEscape(opts.site)}"]`);
    await siteRow.waitFor({ state: 'visible' });

    setStep('wait for #conn-state == live');
    await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent.trim() === 'live');

    setStep(`find alert row "${opts.alert}"`);
    await page.selectOption('#alert-filter', 'all'); // the alert may be in any status bucket
    const row = page.locator(`[data-testid=alert-row][data-alert="${cssEscape(opts.alert)}"]`);
    await row.waitFor({ state: 'visible' });
    const before = await row.getAttribute('data-status');
    if (before !== 'new') throw new Error(`alert ${opts.alert} has data-status=${before}, expected new before acknowledging`);

    setStep(`acknowledge alert "${opts.alert}"`);
    const ack = row.locator('[data-testid=ack-button]');
    if ((await ack.count()) === 0) {
      const role = await page.textContent('#who-role');
      throw new Error(`no ack button in the alert row (signed in as role "${role}"; operator or admin needed)`);
    }
    await ack.click();

    setStep(`wait for alert "${opts.alert}" data-status=acknowledged (SSE echo)`);
    await page.waitForFunction(
      (id) => [...document.querySelectorAll('[data-testid=alert-row]')]
        .find((el) => el.dataset.alert === id)?.dataset.status === 'acknowledged',
      opts.alert,
    );

    setStep('screenshot');
    // Let the map finish drawing the latest data before the picture.
    // Data keeps moving, so the map may never be idle for long: wait for idle or 3 s.
    // page.evaluate has no timeout of its own, hence the outer race.
    await Promise.race([
      page.evaluate(() => new Promise((resolve) => {
        const m = window.mzMap;
        setTimeout(resolve, 3000);
        if (m) m.once('idle', resolve); else resolve();
      })),
      new Promise((resolve) => setTimeout(resolve, 10_000).unref()),
    ]);
    setStep('screenshot: capture');
    // Software WebGL on a busy 2-core machine can make one capture take many seconds.
    await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: Math.max(TIMEOUT, 60_000) });

    setStep('check WebGL map canvas');
    const canvas = await page.evaluate(() => {
      const c = document.querySelector('#map canvas.maplibregl-canvas');
      return c ? { w: c.width, h: c.height } : null;
    });
    if (!canvas || !canvas.w || !canvas.h) throw new Error('no MapLibre canvas in #map');

    await context.close();
  } finally {
    await browser.close();
  }
}

// Minimal CSS attribute-value escaping (ids are alert ids / site names).
function cssEscape(s) {
  return String(s).replace(/["\\]/g, '\\$&');
}

try {
  await main();
} catch (err) {
  problems.unshift(`step "${step}" failed: ${err.message.split('\n')[0]}`);
}

if (problems.length) {
  console.error(`dashboard test FAILED (${problems.length} problem${problems.length > 1 ? 's' : ''}):`);
  for (const p of [...new Set(problems)]) console.error(`  - ${p}`);
  process.exit(1);
}
const hosts = [...new Set(requests.map((u) => { try { return new URL(u).host || new URL(u).protocol; } catch { return u; } }))];
console.log(`dashboard test OK: ${requests.length} requests, hosts: ${hosts.join(', ')}; screenshot ${opts.screenshot}`);
console.log('1 passed, 0 failed');
