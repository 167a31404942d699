#!/usr/bin/env node
// Approves an OAuth 2.0 Device Authorization (RFC 8628) on oidc-provider, in headless Debian
// Chromium driven by playwright-core, the way a person would on another device.
//
//   node tests/idp/approve-device.mjs VERIFICATION_URI_COMPLETE [--login alice]
//   node tests/idp/approve-device.mjs VERIFICATION_URI --code USER_CODE [--login alice]
//
// Steps: open the URL; type the user code if the provider asks for it (--code); press
// "Continue" on the provider's "Confirm Device" page; sign in on the devInteractions login page
// (any password); press "Continue" on the consent page if one is shown; exit 0 on the
// provider's "Sign-in Success" page. Exit 1 with a message on anything else (wrong or expired
// code, provider error page, timeout). Progress goes to stderr; nothing to stdout.
//
// Options:
//   --login NAME     login name (default $MYCLI_TEST_LOGIN, else alice)
//   --password PW    password (default $MYCLI_TEST_PASSWORD, else pw; any value is accepted)
//   --code CODE      user code, when the URL is the plain verification_uri
//   --deny           press "[ Abort ]" on the confirm page instead (mycli then gets access_denied);
//                    exits 0 when the provider confirms the abort
//   --timeout S      overall limit in seconds (default $MYCLI_TEST_BROWSER_TIMEOUT, else 60)
// Environment: MYCLI_TEST_CHROMIUM, browser executable (default /usr/bin/chromium).
// Only loopback hosts are ever contacted: every other request of the page is aborted.

import { parseArgs } from 'node:util';

import { chromiumSession, detachSafe, isLoopbackUrl, logger, run, sleep } from './chromium.mjs';

detachSafe();
const log = logger('approve-device.mjs');

let opts;
let positionals;
try {
  ({ values: opts, positionals } = parseArgs({
    options: {
      login: { type: 'string' },
      password: { type: 'string' },
      code: { type: 'string' },
      deny: { type: 'boolean', default: false },
      timeout: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  }));
} catch (e) {
  log(`${e.message}\nusage: approve-device.mjs URL [--code USER_CODE] [--login NAME] [--deny]`);
  process.exit(2);
}
if (positionals.length !== 1) {
  log('usage: approve-device.mjs URL [--code USER_CODE] [--login NAME] [--deny]');
  process.exit(2);
}
const url = positionals[0];

if (!isLoopbackUrl(url)) {
  log(`refusing a non-loopback URL: ${url}`);
  process.exit(2);
}

const LOGIN = opts.login || process.env.MYCLI_TEST_LOGIN || 'alice';
const PASSWORD = opts.password || process.env.MYCLI_TEST_PASSWORD || 'pw';
const TIMEOUT_S = Number(opts.timeout || process.env.MYCLI_TEST_BROWSER_TIMEOUT || 60);
const EXECUTABLE = process.env.MYCLI_TEST_CHROMIUM || '/usr/bin/chromium';
if (!(TIMEOUT_S > 0)) {
  log('--timeout must be a positive number of seconds');
  process.exit(2);
}

const { launch, finish } = chromiumSession({ log, timeoutS: TIMEOUT_S, executable: EXECUTABLE });

async function classify(page) {
  if (page.url().startsWith('chrome-error://')) return { kind: 'neterror' };
  try {
    return await page.evaluate(() => {
      const q = (s) => document.querySelector(s);
      if (document.title === 'Sign-in Success') return { kind: 'success' };
      if (q('form[id="op.deviceConfirmForm"]')) return { kind: 'confirm' };
      if (q('form[id="op.deviceInputForm"]')) {
        return { kind: 'input', error: q('p.red') ? q('p.red').innerText : undefined };
      }
      if (q('form input[name="prompt"][value="login"]')) return { kind: 'login' };
      if (q('form input[name="prompt"][value="consent"]')) return { kind: 'consent' };
      if (document.title === 'Error' || document.title.startsWith('oops!')) return { kind: 'error' };
      return { kind: 'other', title: document.title };
    });
  } catch {
    return { kind: 'loading' };
  }
}

async function bodyText(page) {
  try {
    return (await page.evaluate(() => (document.body ? document.body.innerText : ''))).replace(/\s+/g, ' ').trim();
  } catch { return ''; }
}

// Submits and waits until a different document is loaded (URL or page kind changes).
async function submit(page, selector) {
  const before = page.url();
  const nav = page.waitForNavigation({ waitUntil: 'domcontentloaded', timeout: 30_000 });
  await page.click(selector);
  await nav;
  return before;
}

async function main() {
  const context = await launch();
  const page = context.pages()[0] || await context.newPage();
  log(`opening ${url}`);
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 30_000 });

  let codeTyped = false;
  let lastUrl = '';
  let sameSince = Date.now();
  for (;;) {
    const state = await classify(page);
    const u = page.url();
    if (u !== lastUrl) { lastUrl = u; sameSince = Date.now(); }
    switch (state.kind) {
      case 'success':
        log(`done: ${await bodyText(page)}`);
        return;
      case 'input':
        if (state.error && (codeTyped || !opts.code)) throw new Error(`the provider refused the code: ${state.error}`);
        if (state.error && /interrupted/i.test(state.error) && opts.deny) {
          log(`aborted: ${state.error}`);
          return;
        }
        if (!opts.code) throw new Error('the provider asks for the user code: pass --code USER_CODE');
        log(`entering user code ${opts.code}`);
        await page.fill('form[id="op.deviceInputForm"] input[name="user_code"]', opts.code);
        codeTyped = true;
        await submit(page, 'button[form="op.deviceInputForm"]');
        break;
      case 'confirm': {
        const shown = await page.evaluate(() => document.querySelector('#user-code, code')?.innerText);
        if (opts.deny) {
          log(`aborting device ${shown ?? ''}`);
          await submit(page, 'button[form="op.deviceConfirmForm"][name="abort"]');
          const after = await classify(page);
          const text = await bodyText(page);
          if (after.kind === 'input' && /interrupted/i.test(text)) {
            log('aborted: the provider says the sign-in request was interrupted');
            return;
          }
          throw new Error(`unexpected page after abort: ${text.slice(0, 300)}`);
        }
        log(`confirming device ${shown ?? ''}`);
        await submit(page, 'button[form="op.deviceConfirmForm"]:not([name="abort"])');
        break;
      }
      case 'login':
        log(`signing in as ${LOGIN}`);
        await page.fill('input[name="login"]', LOGIN);
        await page.fill('input[name="password"]', PASSWORD);
        await submit(page, 'form:has(input[name="prompt"][value="login"]) button[type="submit"]');
        break;
      case 'consent':
        log('consenting');
        await submit(page, 'form:has(input[name="prompt"][value="consent"]) button[type="submit"]');
        break;
      case 'error':
        throw new Error(`the provider showed an error page: ${await bodyText(page)}`);
      case 'neterror':
        throw new Error(`navigation failed at ${lastUrl}`);
      default:
        if (Date.now() - sameSince > 10_000) {
          throw new Error(`stuck on ${u} (${state.title ?? state.kind}): ${(await bodyText(page)).slice(0, 500)}`);
        }
        await sleep(100);
    }
  }
}

run(main, finish);
