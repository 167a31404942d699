#!/usr/bin/env node
// A real OpenID Connect provider for mycli's tests: panva's oidc-provider on 127.0.0.1.
//
//   node tests/idp/oidc-server.mjs [--port N]
//
// Prints exactly one line on stdout when ready:  listening http://127.0.0.1:PORT
// (that URL is the issuer, no trailing slash). Nothing else goes to stdout; diagnostics go to
// stderr (set OIDC_DEBUG=1 for a line per request and per provider error).
//
// Environment:
//   OIDC_ACCESS_TTL        access token and ID token lifetime in seconds (default 300)
//   OIDC_REFRESH_TTL       refresh token lifetime in seconds (default 86400)
//   OIDC_REQUIRE_CONSENT   1 = show oidc-provider's own consent page ("Continue") after login;
//                          default: consent is granted automatically, the user only signs in
//   OIDC_DEBUG             1 = log requests and provider errors to stderr
//   OIDC_NO_REFRESH        1 = issue no refresh tokens at all (a client without offline_access)
//
// Extra endpoint (outside the provider): GET /__stats -> JSON counters, see `stats` below.
// SIGTERM / SIGINT: closes the listener and exits 0.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

// oidc-provider prints its development notices with console.info (stdout). stdout belongs to the
// one "listening" line, so every console channel goes to stderr, and the dev-only notices are
// dropped unless OIDC_DEBUG is set.
const DEBUG = !!process.env.OIDC_DEBUG && process.env.OIDC_DEBUG !== '0';
const toStderr = (...args) => {
  const line = args.map(String).join(' ');
  if (!DEBUG && /oidc-provider (NOTICE|WARNING):/.test(line)) return;
  process.stderr.write(`${line}\n`);
};
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;
console.debug = toStderr;

const { default: Provider, interactionPolicy, errors } = await import('oidc-provider');

function fail(msg) {
  process.stderr.write(`oidc-server: ${msg}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: { port: { type: 'string', default: '0' } },
    strict: true,
  }));
} catch (e) {
  fail(e.message);
}
const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${args.port}`);

function envSeconds(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) fail(`${name} must be a positive integer (seconds), got ${raw}`);
  return n;
}
const ACCESS_TTL = envSeconds('OIDC_ACCESS_TTL', 300);
const REFRESH_TTL = envSeconds('OIDC_REFRESH_TTL', 24 * 60 * 60);
const REQUIRE_CONSENT = process.env.OIDC_REQUIRE_CONSENT === '1';
const NO_REFRESH = process.env.OIDC_NO_REFRESH === '1';

const CLIENT_ID = 'mycli';
// Access tokens are issued for this one resource server, as signed JWTs (RS256, keys at jwks_uri).
const RESOURCE = 'urn:mycli:api';
const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'];
const RS_SCOPE = 'openid profile email';

const stats = {
  token_requests: 0, // every request to the token endpoint, whatever the grant or the outcome
  refresh_grants: 0, // token requests with grant_type=refresh_token (successful or not)
  refresh_grants_failed: 0, // ... of which were answered with an error (invalid_grant etc.)
  authorization_code_grants: 0,
  device_code_grants: 0, // includes authorization_pending polls
  revocations: 0, // requests to the revocation endpoint
  device_authorizations: 0, // requests to the device authorization endpoint
  authorizations: 0, // requests to the authorization endpoint (GET /auth)
  end_sessions: 0,
};

// organization of each grant, set from the `organization` parameter of the authorization or
// device authorization request that created the grant. Every token of the grant (code,
// refresh tokens across rotation, access tokens, ID tokens) reads it from here.
const orgByGrant = new Map();

function accountEmail(login) {
  return login.includes('@') ? login : `${login}@example.com`;
}

// `sid` (the provider's session id for this client) of a token, kept per grant so that it stays
// the same across refresh even after the browser session is gone. oidc-provider itself only
// stores sid on tokens for clients with back-channel logout.
const sidByGrant = new Map();
async function sessionIdOf(ctx, token) {
  if (token.sid) return token.sid;
  const known = sidByGrant.get(token.grantId);
  if (known) return known;
  let sid;
  if (token.sessionUid) {
    const session = await ctx.oidc.provider.Session.findByUid(token.sessionUid);
    sid = session?.sidFor(token.clientId) || token.sessionUid;
  }
  if (sid && token.grantId) sidByGrant.set(token.grantId, sid);
  return sid;
}

async function findAccount(ctx, id, token) {
  const grantId = token?.grantId ?? ctx.oidc?.entities?.Grant?.jti;
  return {
    accountId: id,
    async claims(use, scope) {
      const claims = {
        sub: id,
        email: accountEmail(id),
        email_verified: true,
        name: id,
        preferred_username: id,
      };
      const org = grantId ? orgByGrant.get(grantId) : undefined;
      if (org) claims.org_id = org;
      return claims;
    },
  };
}

function makeKeys() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `k-${crypto.randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' }] };
}

function page(title, body) {
  // No external resources: the test machine has no internet.
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head>`
    + `<body><h1>${title}</h1>${body}</body></html>`;
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

// Interaction policy. By default the consent prompt is never needed: loadExistingGrant (below)
// grants every requested scope and claim right after login, and the check that forces consent
// for every native client is dropped. With OIDC_REQUIRE_CONSENT=1 the stock policy is kept and
// devInteractions shows its consent page, which grants everything with one "Continue".
const policy = interactionPolicy.base();
if (!REQUIRE_CONSENT) {
  policy.get('consent').checks.remove('native_client_prompt');
}

async function loadExistingGrant(ctx) {
  const { provider } = ctx.oidc;
  const org = ctx.oidc.params?.organization || undefined;
  let grant;
  const consentGrantId = ctx.oidc.result?.consent?.grantId;
  if (consentGrantId) {
    grant = await provider.Grant.find(consentGrantId);
  } else if (REQUIRE_CONSENT) {
    // stock behaviour, except that a grant is never shared between two organizations
    const id = ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id && (orgByGrant.get(id) ?? undefined) === org) grant = await provider.Grant.find(id);
  } else {
    // Auto-consent: a fresh grant per authorization, holding all that was asked for.
    grant = new provider.Grant({
      accountId: ctx.oidc.session.accountId,
      clientId: ctx.oidc.client.clientId,
    });
    const requested = (ctx.oidc.params?.scope || '').split(' ').filter((s) => OIDC_SCOPES.includes(s));
    if (requested.length) grant.addOIDCScope(requested.join(' '));
    grant.addOIDCClaims(['sub', 'email', 'email_verified', 'name', 'preferred_username', 'org_id']);
    grant.addResourceScope(RESOURCE, RS_SCOPE);
    await grant.save();
  }
  if (grant) {
    if (org) orgByGrant.set(grant.jti, org);
    else orgByGrant.delete(grant.jti);
  }
  return grant;
}

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_name: 'mycli',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
    // Native client + http + loopback host: oidc-provider ignores the port when matching
    // (RFC 8252 §7.3), so http://127.0.0.1:54321/callback is accepted.
    redirect_uris: ['http://127.0.0.1/callback', 'http://localhost/callback', 'http://[::1]/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1/logout', 'http://localhost/logout'],
  }],
  jwks: makeKeys(),
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  findAccount,
  claims: {
    openid: ['sub', 'org_id'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  scopes: OIDC_SCOPES,
  responseTypes: ['code', 'none'],
  // put the scope claims (email, org_id, ...) into the ID token even when an access token is
  // issued alongside it
  conformIdTokenClaims: false,
  extraParams: ['organization'],
  pkce: { required: () => true, methods: ['S256'] },
  interactions: { policy },
  loadExistingGrant,
  // oidc-provider follows OIDC Core §11 to the letter: on the authorization endpoint it drops
  // `offline_access` from the scope unless the request also says prompt=consent. Like WorkOS and
  // most IdPs, this provider issues a refresh token on every code / device-code exchange of the
  // client anyway, so mycli needs no prompt=consent (`offline_access` then just does not appear
  // in the returned `scope`). Refresh tokens outlive the browser session.
  issueRefreshToken: async (ctx, client) => !NO_REFRESH && client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  // every refresh_token grant returns a new refresh token and consumes the old one; presenting
  // a consumed one again is invalid_grant AND revokes the whole grant (reuse detection).
  rotateRefreshToken: () => true,
  async extraTokenClaims(ctx, token) {
    // JWT access tokens: the same org_id as the ID token, plus sid and email.
    const claims = {};
    const org = orgByGrant.get(token.grantId);
    if (org) claims.org_id = org;
    const sid = await sessionIdOf(ctx, token);
    if (sid) claims.sid = sid;
    if (token.accountId) claims.email = accountEmail(token.accountId);
    return claims;
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: {
      enabled: true,
      userCodeInputSource: async (ctx, form, out, err) => {
        let msg = '<p>Enter the code displayed on your device</p>';
        if (err && (err.userCode || err.name === 'NoCodeError')) msg = '<p class="red">The code you entered is incorrect. Try again</p>';
        else if (err && err.name === 'AbortedError') msg = '<p class="red">The Sign-in request was interrupted</p>';
        else if (err) msg = '<p class="red">There was an error processing your request</p>';
        ctx.body = page('Sign-in', `${msg}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      userCodeConfirmSource: async (ctx, form, client, deviceInfo, userCode) => {
        ctx.body = page('Confirm Device', `<p><strong>${escapeHtml(client.clientName || client.clientId)}</strong></p>`
          + `<p>The following code should be displayed on your device</p><p><code id="user-code">${escapeHtml(userCode)}</code></p>`
          + `${form}<button autofocus type="submit" form="op.deviceConfirmForm">Continue</button>`
          + '<button type="submit" form="op.deviceConfirmForm" value="yes" name="abort">[ Abort ]</button>');
      },
      successSource: async (ctx) => {
        ctx.body = page('Sign-in Success', '<p>Your sign-in with mycli was successful, you can now close this page.</p>');
      },
    },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out', `${form}<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`
          + '<button type="submit" form="op.logoutForm">No, stay signed in</button>');
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('Sign-out Success', '<p>Your sign-out was successful.</p>');
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: RS_SCOPE,
          audience: CLIENT_ID,
          accessTokenTTL: ACCESS_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: {
    AccessToken: ACCESS_TTL,
    IdToken: ACCESS_TTL,
    RefreshToken: REFRESH_TTL,
    DeviceCode: 600,
    AuthorizationCode: 60,
    Interaction: 3600,
    Session: 24 * 60 * 60,
    Grant: 14 * 24 * 60 * 60,
    ClientCredentials: 600,
    BackchannelAuthenticationRequest: 600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', Object.entries(out).map(([k, v]) => `<p><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`).join(''));
  },
};

let provider;
let providerCallback;

const server = http.createServer((req, res) => {
  if (DEBUG) process.stderr.write(`oidc-server: ${req.method} ${req.url}\n`);
  const path = req.url.split('?')[0];
  if (path === '/__stats') {
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(stats));
    return;
  }
  if (!providerCallback) {
    res.writeHead(503).end();
    return;
  }
  providerCallback(req, res);
});

server.on('error', (e) => fail(`cannot listen on 127.0.0.1:${port}: ${e.message}`));

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  try {
    provider = new Provider(issuer, configuration);
  } catch (e) {
    fail(`provider configuration: ${e.stack || e}`);
  }

  // Counters, from the route each request resolved to.
  provider.use(async (ctx, next) => {
    try {
      await next();
    } finally {
      const route = ctx.oidc?.route;
      if (route === 'token') {
        stats.token_requests += 1;
        const grantType = ctx.oidc.params?.grant_type ?? ctx.oidc.body?.grant_type;
        if (grantType === 'refresh_token') {
          stats.refresh_grants += 1;
          if (ctx.status >= 400) stats.refresh_grants_failed += 1;
        } else if (grantType === 'authorization_code') {
          stats.authorization_code_grants += 1;
        } else if (grantType === 'urn:ietf:params:oauth:grant-type:device_code') {
          stats.device_code_grants += 1;
        }
      } else if (route === 'revocation') {
        stats.revocations += 1;
      } else if (route === 'device_authorization') {
        stats.device_authorizations += 1;
      } else if (route === 'authorization') {
        stats.authorizations += 1;
      } else if (route === 'end_session' || route === 'end_session_confirm') {
        stats.end_sessions += 1;
      }
    }
  });

  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`oidc-server: server_error on ${ctx.method} ${ctx.path}: ${err.stack || err}\n`);
  });
  if (DEBUG) {
    for (const ev of ['grant.error', 'authorization.error', 'revocation.error', 'device_authorization.error',
      'end_session.error', 'userinfo.error', 'introspection.error', 'code_verification.error']) {
      provider.on(ev, (ctx, err) => process.stderr.write(`oidc-server: ${ev}: ${err.message} ${err.error_description || ''}\n`));
    }
  }

  providerCallback = provider.callback();
  process.stdout.write(`listening ${issuer}\n`);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  if (DEBUG) process.stderr.write(`oidc-server: ${signal}, shutting down\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
