// What browser.mjs and approve-device.mjs share: detach safety, a log on stderr, the
// loopback-only rule, and one headless Debian Chromium driven by playwright-core on a fresh
// profile, closed (and its profile removed) on every way out.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// Survives its parent exiting: SIGHUP/SIGPIPE are ignored, a closed stderr or stdout is
// tolerated.
export function detachSafe() {
  process.on('SIGHUP', () => {});
  process.on('SIGPIPE', () => {});
  process.stderr.on('error', () => {});
  process.stdout.on('error', () => {});
}

// `log(msg)` writes `NAME: msg` on stderr, and never throws.
export function logger(name) {
  return (msg) => {
    try { process.stderr.write(`${name}: ${msg}\n`); } catch { /* parent gone */ }
  };
}

export const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export const isLoopbackUrl = (u) => {
  try {
    const p = new URL(u);
    return (p.protocol === 'http:' || p.protocol === 'https:') && (LOOPBACK.has(p.hostname) || /^127\./.test(p.hostname));
  } catch { return false; }
};

export const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// The one Chromium of this process. `launch()` starts it and returns its browser context;
// `finish(code, msg)` logs `msg`, closes Chromium, removes the profile and exits with `code`.
// `finish` runs once: the first call wins, whether from the script, the overall timeout of
// `timeoutS` seconds, SIGTERM or SIGINT.
export function chromiumSession({ log, timeoutS, executable }) {
  let context;
  let userDataDir;
  let finished = false;

  async function finish(code, msg) {
    if (finished) return;
    finished = true;
    if (msg) log(msg);
    try { if (context) await context.close(); } catch { /* already gone */ }
    try { if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true }); } catch { /* ignore */ }
    process.exit(code);
  }

  setTimeout(() => finish(1, `timed out after ${timeoutS} s`), timeoutS * 1000).unref();
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => finish(1, sig));

  async function launch() {
    const { chromium } = await import('playwright-core');
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mycli-test-chromium-'));
    // launchPersistentContext gives the fresh --user-data-dir; playwright adds --headless itself
    // for headless: true, the rest are the flags this machine needs.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: executable,
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
      timeout: 30_000,
    });
    // Never let a page reach beyond this machine (the provider's pages import web fonts).
    await context.route('**/*', (route) => {
      if (isLoopbackUrl(route.request().url())) return route.continue();
      return route.abort('blockedbyclient');
    });
    return context;
  }

  return { launch, finish };
}

// Runs `main`, then finishes with 0, or with 1 and the first line of its error.
export function run(main, finish) {
  main().then(
    () => finish(0),
    (e) => finish(1, `error: ${e.message.split('\n')[0]}`),
  );
}
