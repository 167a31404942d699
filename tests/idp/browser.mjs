#!/usr/bin/env node
// The BROWSER program of mycli's tests: a headless Debian Chromium, driven by playwright-core,
// that signs in on oidc-provider's devInteractions pages and follows the redirect back to
// mycli's loopback server.
//
//   node tests/idp/browser.mjs AUTHORIZE_URL        (or: BROWSER=tests/idp/browser)
//
// Steps: open AUTHORIZE_URL, fill the login form (login = $MYCLI_TEST_LOGIN, else login_hint, else "alice",
// password = $MYCLI_TEST_PASSWORD, default "pw"; any value is accepted), press "Continue" on the
// consent page if one is shown, wait for http://127.0.0.1:*/callback (or localhost / [::1]) to
// load, print that page's text on stderr, write it to $MYCLI_TEST_BROWSER_OUT when set, exit 0.
// Exit 1 with a message on any failure (provider error page, no callback, timeout).
//
// Environment:
//   MYCLI_TEST_LOGIN            login name (becomes `sub`; email login@example.com, or the login
//                               itself when it has an @); default: the request's login_hint,
//                               which the provider pre-fills, else alice
//   MYCLI_TEST_PASSWORD         password, default pw
//   MYCLI_TEST_BROWSER_OUT      file to receive the callback page's text
//   MYCLI_TEST_BROWSER_ACTION   login (default) | deny: press "[ Cancel ]" on the login page,
//                               so the provider redirects with error=access_denied
//   MYCLI_TEST_BROWSER_TIMEOUT  overall limit in seconds, default 60
//   MYCLI_TEST_CHROMIUM         browser executable, default /usr/bin/chromium
//
// Only loopback hosts are ever contacted: every other request of the page is aborted.
// Detach-safe: needs no stdin, survives its parent exiting (SIGHUP/SIGPIPE ignored, a closed
// stderr is tolerated), and always ends within the timeout, closing Chromium.

import * as fs from 'node:fs';

import { LOOPBACK, chromiumSession, detachSafe, isLoopbackUrl, logger, run, sleep } from './chromium.mjs';

detachSafe();
const log = logger('browser.mjs');
const isCallback = (u) => {
  try {
    const p = new URL(u);
    return p.protocol === 'http:' && LOOPBACK.has(p.hostname) && p.pathname === '/callback';
  } catch { return false; }
};
const redact = (u) => {
  try {
    const p = new URL(u);
    for (const k of ['code', 'state', 'code_challenge']) if (p.searchParams.has(k)) p.searchParams.set(k, 'REDACTED');
    return p.href;
  } catch { return u; }
};

const url = process.argv[2];
if (!url || process.argv.length > 3) {
  log('usage: browser.mjs URL');
  process.exit(2);
}
if (!isLoopbackUrl(url)) {
  log(`refusing a non-loopback URL: ${url}`);
  process.exit(2);
}

const LOGIN = process.env.MYCLI_TEST_LOGIN || 'alice';
const PASSWORD = process.env.MYCLI_TEST_PASSWORD || 'pw';
const ACTION = process.env.MYCLI_TEST_BROWSER_ACTION || 'login';
const OUT = process.env.MYCLI_TEST_BROWSER_OUT || '';
const TIMEOUT_S = Number(process.env.MYCLI_TEST_BROWSER_TIMEOUT || 60);
const EXECUTABLE = process.env.MYCLI_TEST_CHROMIUM || '/usr/bin/chromium';
if (!['login', 'deny'].includes(ACTION)) {
  log(`MYCLI_TEST_BROWSER_ACTION must be login or deny, not ${ACTION}`);
  process.exit(2);
}

const { launch, finish } = chromiumSession({ log, timeoutS: TIMEOUT_S, executable: EXECUTABLE });

// What the current page is: the callback, a provider form we know, an error page, or other.
async function classify(page) {
  const u = page.url();
  if (isCallback(u)) return { kind: 'callback' };
  if (u.startsWith('chrome-error://')) return { kind: 'neterror' };
  try {
    return await page.evaluate(() => {
      const q = (s) => document.querySelector(s);
      if (q('form input[name="prompt"][value="login"]')) return { kind: 'login' };
      if (q('form input[name="prompt"][value="consent"]')) return { kind: 'consent' };
      if (document.title === 'Error' || document.title.startsWith('oops!')) return { kind: 'error' };
      return { kind: 'other', title: document.title };
    });
  } catch {
    return { kind: 'loading' }; // navigation in flight destroyed the context
  }
}

async function bodyText(page) {
  try {
    return await page.evaluate(() => (document.body ? document.body.innerText : ''));
  } catch { return ''; }
}

let callbackFailure; // set when the navigation to the loopback callback itself failed

async function clickAndWaitForNewPage(page, selector) {
  const before = page.url();
  try {
    await Promise.all([
      page.waitForURL((u) => u.href !== before, { waitUntil: 'commit', timeout: 30_000 }),
      page.click(selector),
    ]);
  } catch (e) {
    if (!callbackFailure && /net::ERR_/.test(e.message)) await sleep(300); // let requestfailed arrive
    if (callbackFailure) {
      throw new Error(`the loopback callback ${redact(callbackFailure.url)} did not answer: ${callbackFailure.error}`);
    }
    throw e;
  }
}

async function main() {
  const context = await launch();
  const page = context.pages()[0] || await context.newPage();

  let callbackStatus;
  page.on('response', (resp) => {
    if (resp.request().isNavigationRequest() && isCallback(resp.url())) callbackStatus = resp.status();
  });
  page.on('requestfailed', (req) => {
    if (req.isNavigationRequest() && isCallback(req.url())) {
      callbackFailure = { url: req.url(), error: req.failure()?.errorText || 'failed' };
    }
  });

  log(`opening ${redact(url)}`);
  try {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 30_000 });
  } catch (e) {
    // the URL may redirect straight to a callback server that already went away
    if (callbackFailure) throw new Error(`the loopback callback ${redact(callbackFailure.url)} did not answer: ${callbackFailure.error}`);
    if (!isCallback(page.url())) throw new Error(`cannot open ${redact(url)}: ${e.message.split('\n')[0]}`);
  }

  let lastUrl = '';
  let sameSince = Date.now();
  for (;;) {
    const state = await classify(page);
    const u = page.url();
    if (u !== lastUrl) { lastUrl = u; sameSince = Date.now(); }

    switch (state.kind) {
      case 'callback': {
        await page.waitForLoadState('domcontentloaded', { timeout: 30_000 }).catch(() => {});
        if (callbackStatus === undefined) {
          if (callbackFailure) throw new Error(`the loopback callback ${redact(callbackFailure.url)} did not answer: ${callbackFailure.error}`);
          await sleep(100);
          break;
        }
        const text = (await bodyText(page)).trim();
        log(`landed on ${redact(page.url())} (HTTP ${callbackStatus ?? '?'})`);
        try { process.stderr.write(`${text}\n`); } catch { /* parent gone */ }
        if (OUT) fs.writeFileSync(OUT, `${text}\n`);
        return;
      }
      case 'login':
        if (ACTION === 'deny') {
          log('pressing [ Cancel ] on the login page');
          await clickAndWaitForNewPage(page, 'a:text("[ Cancel ]")');
        } else {
          // the provider pre-fills the field with the request's login_hint; keep it unless
          // MYCLI_TEST_LOGIN says otherwise
          const hinted = await page.inputValue('input[name="login"]').catch(() => '');
          const login = process.env.MYCLI_TEST_LOGIN || hinted || LOGIN;
          log(`signing in as ${login}${hinted && login === hinted ? ' (login_hint)' : ''}`);
          await page.fill('input[name="login"]', login);
          await page.fill('input[name="password"]', PASSWORD);
          await clickAndWaitForNewPage(page, 'form:has(input[name="prompt"][value="login"]) button[type="submit"]');
        }
        break;
      case 'consent':
        log('consenting');
        await clickAndWaitForNewPage(page, 'form:has(input[name="prompt"][value="consent"]) button[type="submit"]');
        break;
      case 'error':
        throw new Error(`the provider showed an error page: ${(await bodyText(page)).replace(/\s+/g, ' ').trim()}`);
      case 'neterror':
        throw new Error(`navigation failed (nothing answered at ${redact(lastUrl)}?)`);
      default:
        if (Date.now() - sameSince > 10_000) {
          throw new Error(`stuck on ${redact(u)} (${state.title ?? state.kind}): ${(await bodyText(page)).replace(/\s+/g, ' ').trim().slice(0, 500)}`);
        }
        await sleep(100);
    }
  }
}

run(main, finish);
