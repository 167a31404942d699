#!/usr/bin/env node
// workos-idp.mjs: a strict fake of WorkOS User Management (AuthKit) plus a small generic
// OpenID Connect provider, for mycli's integration tests and demo. Node >= 20, built-ins only.
//
//   node tests/idp/workos-idp.mjs [--port N] [--users FILE.json] [--clients a,b]
//
// Prints exactly one line on stdout once it listens:  listening http://127.0.0.1:PORT
// After that, stdout stays silent. stderr gets one line per request ("METHOD /path STATUS", never a
// query string, token or code) unless WORKOS_IDP_QUIET=1. SIGTERM / SIGINT: exits 0.
//
// Wire shapes follow WorkOS's API reference (https://workos.com/docs/reference/authkit); the
// documented answers themselves are replayed through mycli's parser by tests/workos_contract.rs.
// Where WorkOS is lenient or undocumented this server picks the STRICT reading, so a client that
// passes here also works against the real thing. See README.md next to this file for the knobs
// and the admin API.

import * as http from 'node:http';
import * as crypto from 'node:crypto';
import { URL, URLSearchParams } from 'node:url';
import { readFileSync } from 'node:fs';

// ---------------------------------------------------------------------------------------------
// Command line and data
// ---------------------------------------------------------------------------------------------

function die(msg) {
  process.stderr.write(`workos-idp: ${msg}\n`);
  process.exit(2);
}

function parseCli(argv) {
  const opts = { port: 0, users: null, clients: [] };
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].includes('=') ? argv[i].split(/=(.*)/s, 2) : [argv[i], undefined];
    const val = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) die(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--port') {
      const v = val();
      opts.port = Number(v);
      if (!/^\d+$/.test(v) || opts.port > 65535) die(`bad --port ${v}`);
    } else if (flag === '--users') opts.users = val();
    else if (flag === '--clients') opts.clients = val().split(',').map((s) => s.trim()).filter(Boolean);
    else die(`unknown argument ${argv[i]} (usage: workos-idp.mjs [--port N] [--users FILE] [--clients a,b])`);
  }
  return opts;
}

const CREATED_AT = '2024-01-15T09:30:00.000Z';
const DEFAULT_DATA = {
  organizations: [
    { id: 'org_acme', name: 'Acme Corp' },
    { id: 'org_globex', name: 'Globex Corporation' },
  ],
  users: [
    { id: 'user_alice', email: 'alice@example.com', memberships: [
      { organization_id: 'org_acme', role: 'admin', permissions: ['widgets:read', 'widgets:write'] },
      { organization_id: 'org_globex', role: 'member', permissions: ['widgets:read'] } ] },
    { id: 'user_bob', email: 'bob@example.com', memberships: [
      { organization_id: 'org_acme', role: 'member', permissions: ['widgets:read'] } ] },
    { id: 'user_carol', email: 'carol@example.com', memberships: [] },
  ],
};

// --users FILE.json: {"organizations":[{id,name}], "users":[{id,email,first_name?,last_name?,
// memberships:[ "org_x" | {organization_id, role?, permissions?} ]}], "clients"?: ["client_x"]}
function loadData(file) {
  let raw = DEFAULT_DATA;
  if (file) {
    try { raw = JSON.parse(readFileSync(file, 'utf8')); } catch (e) { die(`cannot read --users ${file}: ${e.message}`); }
  }
  const isObj = (v) => v && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(raw) || !Array.isArray(raw.users) || !Array.isArray(raw.organizations ?? [])) {
    die('--users file must be an object with a "users" array (and an optional "organizations" array)');
  }
  const orgs = new Map();
  for (const o of raw.organizations ?? []) {
    if (!isObj(o) || typeof o.id !== 'string' || typeof o.name !== 'string') die(`bad organization ${JSON.stringify(o)}`);
    orgs.set(o.id, { id: o.id, name: o.name });
  }
  const users = [];
  for (const u of raw.users) {
    if (!isObj(u) || typeof u.id !== 'string' || typeof u.email !== 'string') die(`bad user ${JSON.stringify(u)}`);
    const memberships = (u.memberships ?? []).map((m) => {
      const mm = typeof m === 'string' ? { organization_id: m } : m;
      if (!isObj(mm) || !orgs.has(mm.organization_id)) die(`user ${u.id}: unknown organization in ${JSON.stringify(m)}`);
      return { organization_id: mm.organization_id, role: mm.role ?? 'member', permissions: mm.permissions ?? [] };
    });
    users.push({ id: u.id, email: u.email, first_name: u.first_name ?? null,
      last_name: u.last_name ?? null, memberships });
  }
  if (!users.length) die('--users file has no users');
  return { orgs, users, clients: Array.isArray(raw.clients) ? raw.clients.map(String) : [] };
}

const CLI = parseCli(process.argv.slice(2));
const DATA = loadData(CLI.users);
const CLIENTS = new Set(['client_test', ...DATA.clients, ...CLI.clients]);
const QUIET = process.env.WORKOS_IDP_QUIET === '1';
let BASE = 'http://127.0.0.1:0'; // set once listening
const oidcIssuer = () => `${BASE}/oidc`;

const userByEmail = (email) => DATA.users.find((u) => u.email.toLowerCase() === String(email).toLowerCase());
const userById = (id) => DATA.users.find((u) => u.id === id);
const membership = (user, orgId) => user.memberships.find((m) => m.organization_id === orgId);
const DEFAULT_USER = () => userByEmail('alice@example.com') ?? DATA.users[0];

// The WorkOS `UserlandUser` object (research §1.3), with fixed timestamps.
function userJson(u) {
  return { object: 'user', id: u.id, email: u.email, email_verified: true,
    first_name: u.first_name, last_name: u.last_name,
    name: u.first_name || u.last_name ? [u.first_name, u.last_name].filter(Boolean).join(' ') : null,
    profile_picture_url: null, external_id: null, metadata: {}, last_sign_in_at: new Date().toISOString(),
    locale: null, created_at: CREATED_AT, updated_at: CREATED_AT };
}

// ---------------------------------------------------------------------------------------------
// Ids, randomness, JWT
// ---------------------------------------------------------------------------------------------

const b64u = (b) => Buffer.from(b).toString('base64url');
const randomToken = (n = 32) => crypto.randomBytes(n).toString('base64url');
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
function ulid() { // 48-bit time + 80 random bits, Crockford base32, like WorkOS ids
  let t = Date.now(), s = '';
  for (let i = 0; i < 10; i++) { s = CROCKFORD[t % 32] + s; t = Math.floor(t / 32); }
  for (const b of crypto.randomBytes(16)) s += CROCKFORD[b % 32];
  return s;
}
// RFC 8628 §6.1: base-20 alphabet without vowels, compared case-insensitively, punctuation ignored.
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
function newUserCode() {
  const pick = () => USER_CODE_ALPHABET[crypto.randomInt(USER_CODE_ALPHABET.length)];
  const half = () => Array.from({ length: 4 }, pick).join('');
  return `${half()}-${half()}`;
}
const normUserCode = (c) => String(c ?? '').toUpperCase().replace(/[^A-Z0-9]/g, '');

const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const KID = `sso_oidc_key_pair_${ulid()}`;
const PUBLIC_JWK = { ...publicKey.export({ format: 'jwk' }), alg: 'RS256', kid: KID, use: 'sig' };

function signJwt(claims) {
  const input = `${b64u(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: KID }))}.${b64u(JSON.stringify(claims))}`;
  return `${input}.${b64u(crypto.sign('sha256', Buffer.from(input), privateKey))}`;
}
function verifyJwt(token) { // our own tokens only; returns claims or null, never throws
  try {
    const [h, p, s, extra] = String(token).split('.');
    if (extra !== undefined || !s) return null;
    const header = JSON.parse(Buffer.from(h, 'base64url'));
    if (header.alg !== 'RS256' || header.kid !== KID) return null;
    if (!crypto.verify('sha256', Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url'))) return null;
    return JSON.parse(Buffer.from(p, 'base64url'));
  } catch { return null; }
}

// ---------------------------------------------------------------------------------------------
// Scenario knobs
// ---------------------------------------------------------------------------------------------

const FAULTS = ['500', '502_html', '429', 'html', 'truncated', 'truncated_stream', 'hang',
  'drop_after_rotate', 'invalid_grant'];
const isInt = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;
const KNOBS = {
  access_token_ttl: [300, (v) => isInt(v, -86400, 31536000)],          // seconds; exp = iat + ttl
  device_interval: [5, (v) => v === null || isInt(v, 0, 3600)],          // null = omit `interval`
  device_expires_in: [300, (v) => isInt(v, 0, 86400)],
  device_auto_approve: [false, (v) => typeof v === 'boolean' || typeof v === 'string'], // true | email
  slow_down_next: [0, (v) => isInt(v, 0, 1000)],
  authorize_error: [null, (v) => v === null || (typeof v === 'string' && v.length > 0)],
  authorize_wrong_state: [false, (v) => typeof v === 'boolean'],
  authorize_iss: [null, (v) => v === null || v === false || typeof v === 'string'], // null = dialect default
  force_org: [null, (v) => v === null || (typeof v === 'string' && v.length > 0)],
  // {email, reason?}: new sessions are impersonated (WorkOS `impersonator` + an `act` claim)
  impersonator: [null, (v) => v === null || (typeof v === 'object' && !Array.isArray(v) && typeof v.email === 'string')],
  fail_next: [[], (v) => Array.isArray(v) && v.every((f) => FAULTS.includes(f))],
  refresh_grace_ms: [0, (v) => isInt(v, 0, 3600000)],
  refresh_delay_ms: [0, (v) => isInt(v, 0, 600000)],
  hold_after_rotate: [0, (v) => isInt(v, 0, 1000)], // hold the next N successful refresh answers
  revoke_unsupported_access: [false, (v) => typeof v === 'boolean'],
  access_token_iss: [null, (v) => v === null || typeof v === 'string'], // WorkOS JWT iss (null = base)
  oidc_token_iss: [null, (v) => v === null || typeof v === 'string'],   // OIDC JWT iss (null = issuer)
  org_selection_public: [false, (v) => typeof v === 'boolean'],
  device_ignores_org: [false, (v) => typeof v === 'boolean'], // WorkOS device request: drop organization_id
  // seconds the IdP's clock runs ahead of the machine's (negative: behind): token times and
  // the Date header are read from it, as from an IdP whose clock (or ours) is off
  clock_offset_s: [0, (v) => isInt(v, -2592000, 2592000)],
  // OIDC token and device answers carry expires_in and interval as strings ("3599"), as
  // Entra ID's v1 endpoints send them
  numbers_as_strings: [false, (v) => typeof v === 'boolean'],
};
const number = (n) => (scenario.numbers_as_strings ? String(n) : n);
const freshScenario = () => Object.fromEntries(Object.entries(KNOBS).map(([k, [d]]) => [k, structuredClone(d)]));
let scenario = freshScenario();

// ---------------------------------------------------------------------------------------------
// State (kept across /__admin/reset) and stats
// ---------------------------------------------------------------------------------------------

const codes = new Map();          // authorization code -> {dialect, client_id, redirect_uri, challenge, user_id, org_id, scope, nonce, expires_at, used, session_id}
const devices = new Map();        // device_code -> {dialect, client_id, user_code, requested_org, scope, issued_at, expires_at, interval_ms, status, user_id, org_id, polls, last_poll}
const sessions = new Map();       // sid -> {id, dialect, client_id, user_id, org_id, scope, nonce, auth_time, revoked, revoked_reason, refresh_tokens:Set}
const refreshTokens = new Map();  // token -> {sid, status:'active'|'retired', retired_at, successor, replay}
const pendingAuth = new Map();    // pending_authentication_token -> {user_id, client_id, expires_at}
let lastDevice = null;

function freshStats() {
  return { requests: {}, grants: { authorization_code: 0, device_code: 0, refresh_token: 0, organization_selection: 0, other: 0 },
    refresh_success: 0, refresh_reuse_detected: 0, refresh_grace_replays: 0, sessions_created: 0,
    slow_downs: 0, polls: {}, faults_injected: [], logouts: 0, logout_requests: [], revocations: 0,
    revoke_requests: [], revoked_sessions: [], last_authorize_query: null, last_device_request: null,
    last_token_request: null, last_token_content_type: null };
}
let stats = freshStats();

const SECRET_FIELDS = new Set(['code', 'code_verifier', 'refresh_token', 'device_code', 'client_secret',
  'pending_authentication_token', 'token', 'id_token_hint']);
const redact = (params) => Object.fromEntries(Object.entries(params).map(([k, v]) =>
  [k, SECRET_FIELDS.has(k) && v !== '' ? '<present>' : v]));

function revokeSession(sid, reason) {
  const s = sessions.get(sid);
  if (!s) return false;
  if (!s.revoked) { s.revoked = true; s.revoked_reason = reason; }
  if (!stats.revoked_sessions.includes(sid)) stats.revoked_sessions.push(sid);
  return true;
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, body) { super(typeof body === 'string' ? body : JSON.stringify(body)); this.status = status; this.body = body; }
}
// OAuth-shape error {error, error_description} (RFC 6749 §5.2); WorkOS-shape is {code, message}.
const oauthErr = (status, error, desc) => new HttpError(status, { error, error_description: desc });
const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
  `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;

// The IdP's own clock (milliseconds): the machine's, moved by the clock_offset_s knob.
const idpNow = () => Date.now() + scenario.clock_offset_s * 1000;
function sendJson(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  const date = scenario.clock_offset_s ? { date: new Date(idpNow()).toUTCString() } : {};
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body), ...date, ...headers });
  res.end(body);
}
function sendHtml(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html) });
  res.end(html);
}
function redirect(res, location) {
  res.writeHead(302, { location, 'content-length': 0, 'cache-control': 'no-store' });
  res.end();
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const BODY_LIMIT = 64 * 1024;
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = []; let size = 0, done = false;
    req.on('data', (c) => {
      if (done) return;
      size += c.length;
      if (size > BODY_LIMIT) { done = true; reject(new HttpError(413, { message: 'Request body too large' })); return; }
      chunks.push(c);
    });
    req.on('end', () => { if (!done) { done = true; resolve(Buffer.concat(chunks)); } });
    req.on('error', (e) => { if (!done) { done = true; reject(e); } });
  });
}

// Parses a form or JSON body into a null-prototype object of strings. Strict: repeated form
// parameters are rejected (RFC 6749 §3.1), JSON must be an object of strings (null = absent).
async function readParams(req, { json = false, form = true } = {}) {
  const buf = await readBody(req);
  const ctype = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const out = Object.create(null);
  if (!buf.length && !ctype) return { params: out, ctype: '' };
  if (form && ctype === 'application/x-www-form-urlencoded') {
    for (const [k, v] of new URLSearchParams(buf.toString('utf8'))) {
      if (k in out) throw oauthErr(400, 'invalid_request', `Parameter "${k}" is repeated`);
      out[k] = v;
    }
    return { params: out, ctype };
  }
  if (json && ctype === 'application/json') {
    let obj;
    try { obj = JSON.parse(buf.toString('utf8')); } catch { throw oauthErr(400, 'invalid_request', 'Malformed JSON body'); }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw oauthErr(400, 'invalid_request', 'JSON body must be an object');
    for (const [k, v] of Object.entries(obj)) {
      if (v === null) continue;
      if (typeof v !== 'string') throw oauthErr(400, 'invalid_request', `Parameter "${k}" must be a string`);
      out[k] = v;
    }
    return { params: out, ctype };
  }
  const accepted = [form && 'application/x-www-form-urlencoded', json && 'application/json'].filter(Boolean).join(' or ');
  throw oauthErr(400, 'invalid_request', `Unsupported Content-Type "${ctype || '(none)'}"; send ${accepted}`);
}

async function readAdminJson(req) {
  const buf = await readBody(req);
  if (!buf.length) return {};
  try {
    const v = JSON.parse(buf.toString('utf8'));
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch { /* fall through */ }
  throw new HttpError(400, { error: 'invalid_json', message: 'Body must be a JSON object' });
}

const need = (params, ...names) => {
  for (const n of names) if (!params[n]) throw oauthErr(400, 'invalid_request', `Missing required parameter "${n}"`);
};

// ---------------------------------------------------------------------------------------------
// Sessions and token minting
// ---------------------------------------------------------------------------------------------

// Decides the organization of a new session. WorkOS dialect: several memberships and none chosen
// -> 403 organization_selection_required (what WorkOS's emulator returns from every
// session-starting grant). OIDC dialect: no selection step, the first membership is used.
function startSession({ dialect, user, client_id, requested_org, scope, nonce }) {
  let org = requested_org || null;
  if (scenario.force_org) org = scenario.force_org; // deliberately "wrong" org for mismatch tests
  else if (!org && user.memberships.length === 1) org = user.memberships[0].organization_id;
  else if (!org && user.memberships.length > 1) {
    if (dialect === 'oidc') org = user.memberships[0].organization_id;
    else {
      const pat = randomToken(18);
      pendingAuth.set(pat, { user_id: user.id, client_id, expires_at: Date.now() + 10 * 60_000 });
      throw new HttpError(403, { code: 'organization_selection_required',
        message: 'The user must choose an organization to finish their authentication.',
        pending_authentication_token: pat,
        organizations: user.memberships.map((m) => ({ id: m.organization_id, name: DATA.orgs.get(m.organization_id)?.name ?? m.organization_id })),
        user: userJson(user) });
    }
  }
  const s = { id: `session_${ulid()}`, dialect, client_id, user_id: user.id, org_id: org, scope: scope ?? null,
    nonce: nonce ?? null, auth_time: Math.floor(Date.now() / 1000), revoked: false, revoked_reason: null,
    refresh_tokens: new Set(), created_at: new Date().toISOString() };
  sessions.set(s.id, s);
  stats.sessions_created++;
  return s;
}

// Mints an access token (+ id_token for OIDC) and a NEW refresh token for the session.
function mint(session, { initial }) {
  const user = userById(session.user_id);
  const iat = Math.floor(idpNow() / 1000), exp = iat + scenario.access_token_ttl;
  const org = session.org_id;
  const m = org ? membership(user, org) : null;
  const orgClaims = org ? { org_id: org, role: m?.role ?? 'member', roles: [m?.role ?? 'member'], permissions: m?.permissions ?? [] } : {};
  let refresh = null;
  const wantsRefresh = session.dialect === 'workos' || /(^|\s)offline_access(\s|$)/.test(session.scope ?? '');
  if (wantsRefresh) {
    refresh = randomToken(32);
    refreshTokens.set(refresh, { sid: session.id, status: 'active', retired_at: null, successor: null, replay: null });
    session.refresh_tokens.add(refresh);
  }
  if (session.dialect === 'workos') {
    // UserlandAuthenticateResponse: NO expires_in, NO token_type, NO id_token (research §0, §1.3).
    const act = scenario.impersonator ? { act: { sub: scenario.impersonator.email } } : {};
    const access = signJwt({ iss: scenario.access_token_iss ?? BASE, sub: user.id, sid: session.id, ...orgClaims,
      ...act, jti: ulid(), iat, exp });
    const body = { user: userJson(user) };
    if (org) body.organization_id = org;
    if (scenario.impersonator) {
      body.impersonator = { email: scenario.impersonator.email, reason: scenario.impersonator.reason ?? null };
    }
    Object.assign(body, { access_token: access, refresh_token: refresh, authentication_method: 'SSO' });
    return body;
  }
  const iss = scenario.oidc_token_iss ?? oidcIssuer();
  const access = signJwt({ iss, sub: user.id, aud: session.client_id, client_id: session.client_id, sid: session.id,
    ...orgClaims, scope: session.scope, jti: ulid(), iat, exp });
  const idToken = signJwt({ iss, aud: session.client_id, sub: user.id, email: user.email, email_verified: true,
    ...(org ? { org_id: org } : {}), sid: session.id, ...(initial && session.nonce ? { nonce: session.nonce } : {}),
    auth_time: session.auth_time, iat, exp });
  const body = { access_token: access, token_type: 'Bearer', expires_in: number(scenario.access_token_ttl) };
  if (refresh) body.refresh_token = refresh;
  Object.assign(body, { id_token: idToken, scope: session.scope });
  return body;
}

// ---------------------------------------------------------------------------------------------
// Authorization endpoint (both dialects)
// ---------------------------------------------------------------------------------------------

const PKCE_RE = /^[A-Za-z0-9\-._~]{43,128}$/;
const CHALLENGE_RE = /^[A-Za-z0-9_-]{43}$/; // BASE64URL(SHA-256) without padding

function validLoopbackRedirect(raw) {
  let u;
  try { u = new URL(raw); } catch { return false; }
  // Loopback only (RFC 8252 §7.3), explicit port, no fragment or credentials (RFC 6749 §3.1.2).
  return u.protocol === 'http:' && (u.hostname === '127.0.0.1' || u.hostname === 'localhost') &&
    u.port !== '' && !u.hash && !raw.includes('#') && !u.username && !u.password;
}

function authorize(req, res, url, dialect) {
  const q = url.searchParams;
  const params = Object.create(null);
  let repeated = null;
  for (const [k, v] of q) {
    if (k in params && (!repeated || k === 'client_id' || k === 'redirect_uri')) repeated = k;
    params[k] = v;
  }
  stats.last_authorize_query = { ...params };
  const bad = (msg) => sendHtml(res, 400, page('Invalid authorization request', `<p>${escapeHtml(msg)}</p>`));
  // Problems with client_id / redirect_uri must NOT redirect (RFC 6749 §4.1.2.1).
  if (repeated === 'client_id' || repeated === 'redirect_uri') return bad(`Parameter ${repeated} is repeated.`);
  if (!params.client_id) return bad('Missing client_id.');
  if (!CLIENTS.has(params.client_id)) return bad(`Unknown client_id ${params.client_id}.`);
  if (!params.redirect_uri) return bad('Missing redirect_uri.');
  if (!validLoopbackRedirect(params.redirect_uri)) {
    return bad('redirect_uri must be http://127.0.0.1:PORT/... or http://localhost:PORT/... (no fragment).');
  }

  const issParam = scenario.authorize_iss === null ? (dialect === 'oidc' ? oidcIssuer() : null) : scenario.authorize_iss || null;
  const back = (extra) => {
    const target = new URL(params.redirect_uri);
    for (const [k, v] of Object.entries(extra)) if (v != null) target.searchParams.append(k, v);
    if (params.state !== undefined) {
      target.searchParams.append('state', scenario.authorize_wrong_state ? `wrong-${randomToken(8)}` : params.state);
    }
    if (issParam) target.searchParams.append('iss', issParam); // RFC 9207
    return redirect(res, target.toString());
  };
  const fail = (error, description) => back({ error, error_description: description });

  if (repeated) return fail('invalid_request', `Parameter ${repeated} is repeated`);
  if (!params.response_type) return fail('invalid_request', 'Missing response_type');
  if (params.response_type !== 'code') return fail('unsupported_response_type', 'Only response_type=code is supported');
  if (dialect === 'workos' && params.provider !== 'authkit') {
    return fail('invalid_request', 'provider must be "authkit" (this test IdP has no SSO connections)');
  }
  if (dialect === 'oidc' && !(params.scope ?? '').split(' ').includes('openid')) {
    return fail('invalid_scope', 'scope must include "openid"');
  }
  // WorkOS: "The only valid PKCE code challenge method is S256". Missing PKCE is refused too.
  if (!params.code_challenge) return fail('invalid_request', 'Missing code_challenge (PKCE is required)');
  if (params.code_challenge_method !== 'S256') return fail('invalid_request', 'code_challenge_method must be S256');
  if (!CHALLENGE_RE.test(params.code_challenge)) return fail('invalid_request', 'code_challenge is not BASE64URL(SHA-256(verifier))');
  if (!params.state) return fail('invalid_request', 'Missing state (this test IdP requires it)');
  if (scenario.authorize_error) return fail(scenario.authorize_error, `Scenario: ${scenario.authorize_error}`);

  const user = params.login_hint ? userByEmail(params.login_hint) : DEFAULT_USER();
  if (!user) return fail('access_denied', `No user with email ${params.login_hint}`);
  const orgParam = dialect === 'workos' ? params.organization_id : params.organization;
  if (orgParam && !membership(user, orgParam)) {
    return dialect === 'workos'
      ? fail('organization_invalid', `The user is not a member of organization ${orgParam}`)
      : fail('invalid_request', `The user is not a member of organization ${orgParam}`);
  }
  const code = randomToken(24);
  codes.set(code, { dialect, client_id: params.client_id, redirect_uri: params.redirect_uri,
    challenge: params.code_challenge, user_id: user.id, org_id: orgParam || null, scope: params.scope ?? null,
    nonce: params.nonce ?? null, expires_at: Date.now() + 10 * 60_000, used: false, session_id: null });
  return back({ code });
}

// ---------------------------------------------------------------------------------------------
// Device authorization (RFC 8628) and the verification page
// ---------------------------------------------------------------------------------------------

async function deviceAuthorization(req, res, dialect) {
  const { params } = await readParams(req, { json: dialect === 'workos', form: true });
  stats.last_device_request = redact(params);
  need(params, 'client_id');
  if (!CLIENTS.has(params.client_id)) throw oauthErr(dialect === 'oidc' ? 401 : 400, 'invalid_client', 'Unknown client');
  if (dialect === 'oidc' && params.scope && !params.scope.split(' ').includes('openid')) {
    throw oauthErr(400, 'invalid_scope', 'scope must include "openid"');
  }
  let userCode;
  do userCode = newUserCode(); while ([...devices.values()].some((d) => d.user_code === userCode));
  const deviceCode = randomToken(32);
  const now = Date.now();
  // WorkOS does not document organization_id on this endpoint; it is accepted and remembered.
  const dev = { dialect, client_id: params.client_id, device_code: deviceCode, user_code: userCode,
    requested_org: (dialect === 'workos'
      ? (scenario.device_ignores_org ? null : params.organization_id)
      : params.organization) || null,
    scope: params.scope ?? (dialect === 'oidc' ? 'openid' : null), issued_at: now,
    expires_at: now + scenario.device_expires_in * 1000,
    interval_ms: (scenario.device_interval ?? 5) * 1000, // RFC 8628 default 5 s when omitted
    status: 'pending', user_id: null, org_id: null, polls: [], last_poll: null };
  devices.set(deviceCode, dev);
  stats.polls[userCode] = dev.polls;
  lastDevice = dev;
  const body = { device_code: deviceCode, user_code: userCode, verification_uri: `${BASE}/device`,
    verification_uri_complete: `${BASE}/device?user_code=${userCode}`, expires_in: number(scenario.device_expires_in) };
  if (scenario.device_interval !== null) body.interval = number(scenario.device_interval);
  sendJson(res, 200, body);
}

// Approves or denies a pending device code, as the user would in the browser.
// Returns [httpStatus, jsonBody].
function decideDevice({ user_code, email, organization_id, deny }) {
  let dev;
  if (user_code) dev = [...devices.values()].find((d) => normUserCode(d.user_code) === normUserCode(user_code));
  else dev = [...devices.values()].filter((d) => d.status === 'pending').sort((a, b) => b.issued_at - a.issued_at)[0];
  if (!dev) return [404, { error: 'not_found', message: user_code ? `No device code with user_code ${user_code}` : 'No pending device code' }];
  if (dev.status !== 'pending') return [409, { error: 'not_pending', message: `Device code is ${dev.status}`, user_code: dev.user_code }];
  if (Date.now() > dev.expires_at) return [400, { error: 'expired_token', message: 'Device code has expired', user_code: dev.user_code }];
  if (deny) { dev.status = 'denied'; return [200, { user_code: dev.user_code, status: 'denied' }]; }
  const user = email ? userByEmail(email) : DEFAULT_USER();
  if (!user) return [400, { error: 'unknown_user', message: `No user with email ${email}` }];
  const org = organization_id || dev.requested_org;
  if (org && !scenario.force_org && !membership(user, org)) {
    return [400, { error: 'organization_invalid', message: `${user.email} is not a member of ${org}` }];
  }
  Object.assign(dev, { status: 'approved', user_id: user.id, org_id: org || null });
  return [200, { user_code: dev.user_code, status: 'approved', user_id: user.id, organization_id: org || null }];
}

async function devicePage(req, res, url) {
  let p;
  if (req.method === 'POST') p = (await readParams(req, { form: true })).params;
  else p = Object.fromEntries(url.searchParams);
  const auto = req.method === 'GET' && scenario.device_auto_approve;
  if (p.user_code && (req.method === 'POST' || p.approve === '1' || p.deny === '1' || auto)) {
    const email = p.email || (typeof auto === 'string' ? auto : undefined);
    const [status, body] = decideDevice({ user_code: p.user_code, email, organization_id: p.organization_id, deny: p.deny === '1' });
    const title = status === 200 ? (body.status === 'denied' ? 'Device denied' : 'Device approved') : 'Device not approved';
    return sendHtml(res, status, page(title, `<p>${escapeHtml(body.message ?? `Code ${body.user_code}: ${body.status}. You may close this window.`)}</p>`));
  }
  const options = DATA.users.map((u) => `<option>${escapeHtml(u.email)}</option>`).join('');
  sendHtml(res, 200, page('Activate device', `<form method="post" action="/device">
<label>Code <input name="user_code" value="${escapeHtml(p.user_code ?? '')}"></label>
<label>User <select name="email">${options}</select></label>
<label>Organization id <input name="organization_id"></label>
<button>Approve</button></form>`));
}

// ---------------------------------------------------------------------------------------------
// Token endpoint (/user_management/authenticate and /oidc/token)
// ---------------------------------------------------------------------------------------------

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const ORG_SELECTION_GRANT = 'urn:workos:oauth:grant-type:organization-selection';
const GRANT_STAT = { authorization_code: 'authorization_code', [DEVICE_GRANT]: 'device_code',
  refresh_token: 'refresh_token', [ORG_SELECTION_GRANT]: 'organization_selection' };
const hungSockets = new Set();
const heldAnswers = [];           // resolvers of refresh answers held after the rotation

async function tokenEndpoint(req, res, dialect) {
  // WorkOS accepts JSON (spec) and form (docs, examples); a standard OIDC token endpoint is form only.
  const { params, ctype } = await readParams(req, { json: dialect === 'workos', form: true });
  stats.last_token_request = redact(params);
  stats.last_token_content_type = ctype;
  const grant = params.grant_type;
  stats.grants[GRANT_STAT[grant] ?? 'other']++;

  // Record a device poll at arrival (before any injected fault) so timing stats are truthful.
  let pollGap = null;
  const dev = grant === DEVICE_GRANT ? devices.get(params.device_code ?? '') : undefined;
  if (dev) {
    const now = Date.now();
    if (dev.last_poll !== null) pollGap = now - dev.last_poll;
    dev.last_poll = now;
    dev.polls.push(now);
    stats.polls[dev.user_code] = dev.polls;
  }

  const fault = scenario.fail_next.length ? scenario.fail_next.shift() : null;
  if (fault) stats.faults_injected.push(fault);
  const run = () => runGrant(dialect, grant, params, dev, pollGap);
  switch (fault) {
    case null: break;
    case '500': return sendJson(res, 500, { message: 'Internal' });
    case '429': return sendJson(res, 429, { error: 'too_many_requests' }, { 'retry-after': '1' });
    case '502_html': return sendHtml(res, 502, page('502 Bad Gateway', '<p>nginx</p>'));
    case 'html': return sendHtml(res, 200, page('Sign in', '<p>Please sign in to continue.</p>'));
    case 'truncated': {
      const body = '{"user":{"object":"user","id":"user_al';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      return res.end(body);
    }
    case 'truncated_stream': { // promises more bytes than it sends, then closes the connection
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 4096 });
      res.write('{"user":{"object":"user","id":"user_al');
      return setTimeout(() => req.socket.destroy(), 20);
    }
    case 'hang': hungSockets.add(req.socket); req.socket.once('close', () => hungSockets.delete(req.socket)); return;
    case 'invalid_grant': throw oauthErr(400, 'invalid_grant', 'Scenario: injected invalid_grant');
    case 'drop_after_rotate': // do the work server-side (rotate, consume the code, ...) then lose the answer
      try { await run(); } catch { /* the client never sees it either way */ }
      return req.socket.destroy();
  }
  const [status, body] = await run();
  if (grant === 'refresh_token' && status === 200 && scenario.hold_after_rotate > 0) {
    // The token is rotated; the answer waits for POST /__admin/release.
    scenario.hold_after_rotate--;
    await new Promise((resolve) => heldAnswers.push(resolve));
  }
  sendJson(res, status, body);
}

async function runGrant(dialect, grant, params, dev, pollGap) {
  if (!grant) throw oauthErr(400, 'invalid_request', 'Missing required parameter "grant_type"');
  need(params, 'client_id');
  if (!CLIENTS.has(params.client_id)) throw oauthErr(dialect === 'oidc' ? 401 : 400, 'invalid_client', 'Unknown client');
  switch (grant) {
    case 'authorization_code': return codeGrant(dialect, params);
    case DEVICE_GRANT: return deviceGrant(dialect, params, dev, pollGap);
    case 'refresh_token': return refreshGrant(dialect, params);
    case ORG_SELECTION_GRANT: if (dialect === 'workos') return orgSelectionGrant(params); // fallthrough
    default: throw oauthErr(400, 'unsupported_grant_type', `Unsupported grant_type ${grant}`);
  }
}

function codeGrant(dialect, params) {
  need(params, 'code', 'code_verifier'); // public client: the verifier is the only proof
  const rec = codes.get(params.code);
  if (!rec || rec.dialect !== dialect) throw oauthErr(400, 'invalid_grant', 'Invalid authorization code');
  if (rec.used) {
    // RFC 6749 §4.1.2: on reuse, revoke what the code produced.
    if (rec.session_id) revokeSession(rec.session_id, 'authorization_code_reuse');
    throw oauthErr(400, 'invalid_grant', 'Authorization code already used');
  }
  rec.used = true; // single-use even when the exchange below fails
  if (Date.now() > rec.expires_at) throw oauthErr(400, 'invalid_grant', 'Authorization code expired');
  if (rec.client_id !== params.client_id) throw oauthErr(400, 'invalid_grant', 'Authorization code was issued to another client');
  if (dialect === 'oidc') { // RFC 6749 §4.1.3: required and identical when sent on /authorize
    need(params, 'redirect_uri');
    if (params.redirect_uri !== rec.redirect_uri) throw oauthErr(400, 'invalid_grant', 'redirect_uri does not match the authorization request');
  }
  if (!PKCE_RE.test(params.code_verifier)) throw oauthErr(400, 'invalid_request', 'code_verifier must be 43-128 characters of [A-Za-z0-9-._~]');
  const computed = b64u(crypto.createHash('sha256').update(params.code_verifier, 'ascii').digest());
  if (computed !== rec.challenge) throw oauthErr(400, 'invalid_grant', 'code_verifier does not match the code_challenge');
  const s = startSession({ dialect, user: userById(rec.user_id), client_id: rec.client_id, requested_org: rec.org_id,
    scope: rec.scope, nonce: rec.nonce });
  rec.session_id = s.id;
  return [200, mint(s, { initial: true })];
}

function deviceGrant(dialect, params, dev, pollGap) {
  need(params, 'device_code');
  if (!dev || dev.dialect !== dialect) throw oauthErr(400, 'invalid_grant', 'Invalid device code');
  if (dev.client_id !== params.client_id) throw oauthErr(400, 'invalid_grant', 'Device code was issued to another client');
  if (dev.status === 'used') throw oauthErr(400, 'invalid_grant', 'Device code already used');
  if (Date.now() > dev.expires_at) throw oauthErr(400, 'expired_token', 'The device code has expired');
  // RFC 8628 §3.5: slow_down means "+5 s for this and all subsequent requests". 200 ms slack.
  const early = pollGap !== null && pollGap < dev.interval_ms - 200;
  if (scenario.slow_down_next > 0 || early) {
    if (scenario.slow_down_next > 0) scenario.slow_down_next--;
    dev.interval_ms += 5000;
    stats.slow_downs++;
    throw oauthErr(400, 'slow_down', `Polling too fast; the interval is now ${dev.interval_ms / 1000} s`);
  }
  if (dev.status === 'denied') throw oauthErr(400, 'access_denied', 'The user denied the request');
  if (dev.status === 'pending') throw oauthErr(400, 'authorization_pending', 'The user has not yet approved the request');
  dev.status = 'used';
  const s = startSession({ dialect, user: userById(dev.user_id), client_id: dev.client_id, requested_org: dev.org_id, scope: dev.scope });
  return [200, mint(s, { initial: true })];
}

// Refresh with STRICT rotation. WorkOS rotates on every use and documents a replay grace window
// (~30 s) returning the same rotated pair; it does not document family revocation on reuse. This
// server is stricter by default: grace 0 and reuse of a retired token revokes the whole session, so
// a client that races refreshes fails loudly. Set refresh_grace_ms to model the grace window.
async function refreshGrant(dialect, params) {
  need(params, 'refresh_token');
  if (scenario.refresh_delay_ms) await sleep(scenario.refresh_delay_ms);
  const rec = refreshTokens.get(params.refresh_token);
  const s = rec && sessions.get(rec.sid);
  if (!rec || !s || s.dialect !== dialect) throw oauthErr(400, 'invalid_grant', 'Invalid refresh token');
  if (s.client_id !== params.client_id) throw oauthErr(400, 'invalid_grant', 'Refresh token was issued to another client');
  if (s.revoked) throw oauthErr(400, 'invalid_grant', `Session has been revoked (${s.revoked_reason})`);
  if (rec.status === 'retired') {
    const succ = refreshTokens.get(rec.successor);
    if (scenario.refresh_grace_ms > 0 && Date.now() - rec.retired_at <= scenario.refresh_grace_ms && succ?.status === 'active' && rec.replay) {
      stats.refresh_grace_replays++;
      return [200, rec.replay]; // same rotated pair, as WorkOS does inside its grace window
    }
    revokeSession(s.id, 'refresh_token_reuse');
    stats.refresh_reuse_detected++;
    throw oauthErr(400, 'invalid_grant', 'Refresh token already used; session revoked');
  }
  // Organization switch (WorkOS only). Choice documented here: a non-member or unknown org answers
  // the WorkOS-shape 400 {"code":"invalid_organization_id","message":...} and does NOT rotate or
  // revoke anything: the session is still good, only that organization is not allowed.
  let org = s.org_id; // without organization_id: the session's most recently used org (WorkOS 2025-07)
  if (dialect === 'workos' && params.organization_id) {
    const user = userById(s.user_id);
    if (!DATA.orgs.has(params.organization_id) || !membership(user, params.organization_id)) {
      throw new HttpError(400, { code: 'invalid_organization_id',
        message: `The session is not authorized for organization ${params.organization_id}.` });
    }
    org = params.organization_id;
  }
  if (scenario.force_org) org = scenario.force_org;
  rec.status = 'retired';
  rec.retired_at = Date.now();
  s.org_id = org;
  const body = mint(s, { initial: false });
  rec.successor = body.refresh_token;
  rec.replay = body;
  stats.refresh_success++;
  return [200, body];
}

// WorkOS organization-selection grant. The spec lists client_secret as required; whether WorkOS
// accepts it from a public client is unverified, so by default it is refused without a secret
// (knob org_selection_public: true accepts it without one).
function orgSelectionGrant(params) {
  if (!params.client_secret && !scenario.org_selection_public) {
    throw oauthErr(400, 'invalid_client', 'client_secret is required for the organization-selection grant');
  }
  need(params, 'pending_authentication_token', 'organization_id');
  const p = pendingAuth.get(params.pending_authentication_token);
  if (!p || p.client_id !== params.client_id || Date.now() > p.expires_at) {
    throw new HttpError(400, { code: 'invalid_pending_authentication_token', message: 'The pending authentication token is invalid or expired.' });
  }
  const user = userById(p.user_id);
  // What WorkOS's own emulator answers for a non-member or an unknown organization.
  if (!membership(user, params.organization_id)) {
    throw new HttpError(404, { code: 'organization_membership_not_found', message: `Organization membership not found for ${params.organization_id}.` });
  }
  pendingAuth.delete(params.pending_authentication_token);
  const s = startSession({ dialect: 'workos', user, client_id: p.client_id, requested_org: params.organization_id });
  return [200, mint(s, { initial: true })];
}

// ---------------------------------------------------------------------------------------------
// Logout, revocation, discovery
// ---------------------------------------------------------------------------------------------

function validReturnTo(raw) {
  try { const u = new URL(raw); return u.protocol === 'http:' || u.protocol === 'https:'; } catch { return false; }
}

function workosLogout(res, url) {
  const sid = url.searchParams.get('session_id');
  const returnTo = url.searchParams.get('return_to');
  stats.logouts++;
  const entry = { session_id: sid, return_to: returnTo, status: 0 };
  stats.logout_requests.push(entry);
  const reply = (status, fn) => { entry.status = status; return fn(); };
  if (!sid) return reply(422, () => sendJson(res, 422, { message: 'session_id is required' }));
  const s = sessions.get(sid);
  if (!s || s.dialect !== 'workos') return reply(422, () => sendJson(res, 422, { message: `Session ${sid} not found` }));
  if (returnTo !== null && !validReturnTo(returnTo)) return reply(422, () => sendJson(res, 422, { message: 'return_to is not a valid URL' }));
  revokeSession(sid, 'logout'); // its refresh tokens now get invalid_grant
  if (returnTo !== null) return reply(302, () => redirect(res, returnTo));
  reply(200, () => sendHtml(res, 200, page('Signed out', '<p>You have been signed out. You may close this window.</p>')));
}

function oidcLogout(res, url) { // OIDC RP-Initiated Logout 1.0 (end_session_endpoint)
  const q = url.searchParams;
  stats.logouts++;
  const claims = q.get('id_token_hint') ? verifyJwt(q.get('id_token_hint')) : null;
  const entry = { session_id: claims?.sid ?? null, return_to: q.get('post_logout_redirect_uri'), status: 0 };
  stats.logout_requests.push(entry);
  if (q.get('id_token_hint') && !claims) { entry.status = 400; return sendHtml(res, 400, page('Logout failed', '<p>Invalid id_token_hint.</p>')); }
  if (claims?.sid) revokeSession(claims.sid, 'logout');
  const target = q.get('post_logout_redirect_uri');
  if (target && validReturnTo(target)) {
    const u = new URL(target);
    if (q.get('state')) u.searchParams.append('state', q.get('state'));
    entry.status = 302;
    return redirect(res, u.toString());
  }
  entry.status = 200;
  sendHtml(res, 200, page('Signed out', '<p>You have been signed out.</p>'));
}

async function oidcRevoke(req, res) { // RFC 7009
  const { params } = await readParams(req, { form: true });
  stats.revocations++;
  const entry = { token: params.token ? '<present>' : null, token_type_hint: params.token_type_hint ?? null,
    client_id: params.client_id ?? null, result: 'error' };
  stats.revoke_requests.push(entry);
  need(params, 'token', 'client_id');
  if (!CLIENTS.has(params.client_id)) throw oauthErr(401, 'invalid_client', 'Unknown client');
  if (params.token_type_hint === 'access_token' && scenario.revoke_unsupported_access) {
    throw oauthErr(400, 'unsupported_token_type', 'Access tokens cannot be revoked');
  }
  const rec = refreshTokens.get(params.token);
  const s = rec && sessions.get(rec.sid);
  if (s && s.dialect === 'oidc') {
    if (s.client_id !== params.client_id) throw oauthErr(400, 'unauthorized_client', 'Token was issued to another client');
    revokeSession(s.id, 'revoked');
    entry.result = 'session_revoked';
  } else if (verifyJwt(params.token)) {
    entry.result = 'access_token_ignored'; // JWT access tokens stay valid until exp; the session is kept
  } else {
    entry.result = 'unknown_token'; // RFC 7009 §2.2: 200 for unknown tokens
  }
  res.writeHead(200, { 'cache-control': 'no-store', 'content-length': 0 });
  res.end();
}

function discovery(res) {
  const iss = oidcIssuer();
  sendJson(res, 200, { issuer: iss, authorization_endpoint: `${iss}/authorize`, token_endpoint: `${iss}/token`,
    device_authorization_endpoint: `${iss}/device_authorization`, revocation_endpoint: `${iss}/revoke`,
    end_session_endpoint: `${iss}/logout`, jwks_uri: `${iss}/jwks`,
    code_challenge_methods_supported: ['S256'],
    grant_types_supported: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    response_types_supported: ['code'], response_modes_supported: ['query'],
    token_endpoint_auth_methods_supported: ['none'], revocation_endpoint_auth_methods_supported: ['none'],
    subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'],
    authorization_response_iss_parameter_supported: true,
    claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'email', 'email_verified', 'org_id', 'sid'] },
  { 'cache-control': 'max-age=60' });
}

// ---------------------------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------------------------

function statsJson() {
  const gaps = lastDevice ? lastDevice.polls.slice(1).map((t, i) => t - lastDevice.polls[i]) : [];
  return { ...stats, last_poll_gaps_ms: gaps, held_answers: heldAnswers.length,
    last_device: lastDevice && { user_code: lastDevice.user_code, dialect: lastDevice.dialect, status: lastDevice.status,
      interval_s: lastDevice.interval_ms / 1000, issued_at_ms: lastDevice.issued_at,
      first_poll_delay_ms: lastDevice.polls.length ? lastDevice.polls[0] - lastDevice.issued_at : null,
      requested_org: lastDevice.requested_org, organization_id: lastDevice.org_id } };
}

const sessionJson = (s) => ({ id: s.id, dialect: s.dialect, client_id: s.client_id, user_id: s.user_id,
  organization_id: s.org_id, revoked: s.revoked, revoked_reason: s.revoked_reason, created_at: s.created_at,
  active_refresh_tokens: [...s.refresh_tokens].filter((t) => refreshTokens.get(t)?.status === 'active').length });

async function admin(req, res, path) {
  const route = `${req.method} ${path}`;
  if (route === 'GET /__admin/stats') return sendJson(res, 200, statsJson());
  if (route === 'GET /__admin/scenario') return sendJson(res, 200, scenario);
  if (route === 'GET /__admin/sessions') return sendJson(res, 200, [...sessions.values()].map(sessionJson));
  if (req.method !== 'POST') throw new HttpError(404, { message: `No admin route ${route}` });
  const body = await readAdminJson(req);
  switch (path) {
    case '/__admin/scenario': {
      // Merge. Unknown knobs or bad values -> 400 and nothing changes. fail_next replaces the queue.
      const next = { ...scenario };
      for (const [k, v] of Object.entries(body)) {
        if (!Object.hasOwn(KNOBS, k)) throw new HttpError(400, { error: 'unknown_knob', message: `Unknown knob ${k}; known: ${Object.keys(KNOBS).join(', ')}` });
        const value = k === 'fail_next' && typeof v === 'string' ? [v] : v;
        if (!KNOBS[k][1](value)) throw new HttpError(400, { error: 'bad_value', message: `Bad value for ${k}: ${JSON.stringify(v)}` });
        next[k] = structuredClone(value);
      }
      scenario = next;
      return sendJson(res, 200, scenario);
    }
    case '/__admin/release': {
      const n = heldAnswers.length;
      heldAnswers.splice(0).forEach((resolve) => resolve());
      return sendJson(res, 200, { released: n });
    }
    case '/__admin/reset': scenario = freshScenario(); return sendJson(res, 200, scenario);
    case '/__admin/reset-stats': stats = freshStats();
      for (const d of devices.values()) d.polls = []; // re-listed under stats.polls on their next poll
      return sendJson(res, 200, statsJson());
    case '/__admin/device/approve': {
      for (const k of ['user_code', 'email', 'organization_id']) {
        if (body[k] != null && typeof body[k] !== 'string') throw new HttpError(400, { error: 'bad_value', message: `${k} must be a string` });
      }
      const [status, out] = decideDevice({ ...body, deny: body.deny === true });
      return sendJson(res, status, out);
    }
    case '/__admin/revoke-session': {
      if (body.sid != null) {
        if (typeof body.sid !== 'string' || !revokeSession(body.sid, 'admin')) throw new HttpError(404, { message: `No session ${body.sid}` });
        return sendJson(res, 200, { revoked: [body.sid] });
      }
      const ids = [...sessions.values()].filter((s) => !s.revoked).map((s) => s.id);
      ids.forEach((id) => revokeSession(id, 'admin'));
      return sendJson(res, 200, { revoked: ids });
    }
  }
  throw new HttpError(404, { message: `No admin route ${route}` });
}

// ---------------------------------------------------------------------------------------------
// Router and server
// ---------------------------------------------------------------------------------------------

const ROUTES = [
  ['GET', '/user_management/authorize', (req, res, url) => authorize(req, res, url, 'workos')],
  ['POST', '/user_management/authorize/device', (req, res) => deviceAuthorization(req, res, 'workos')],
  ['POST', '/user_management/authenticate', (req, res) => tokenEndpoint(req, res, 'workos')],
  ['GET', '/user_management/sessions/logout', (req, res, url) => workosLogout(res, url)],
  ['GET', '/device', (req, res, url) => devicePage(req, res, url)],
  ['POST', '/device', (req, res, url) => devicePage(req, res, url)],
  ['GET', '/oidc/.well-known/openid-configuration', (req, res) => discovery(res)],
  ['GET', '/oidc/authorize', (req, res, url) => authorize(req, res, url, 'oidc')],
  ['POST', '/oidc/device_authorization', (req, res) => deviceAuthorization(req, res, 'oidc')],
  ['POST', '/oidc/token', (req, res) => tokenEndpoint(req, res, 'oidc')],
  ['POST', '/oidc/revoke', (req, res) => oidcRevoke(req, res)],
  ['GET', '/oidc/jwks', (req, res) => sendJson(res, 200, { keys: [PUBLIC_JWK] })],
  ['GET', '/oidc/logout', (req, res, url) => oidcLogout(res, url)],
];

async function handle(req, res, url) {
  const path = url.pathname;
  if (path.startsWith('/__admin/')) return admin(req, res, path);
  const jwks = /^\/sso\/jwks\/([^/]+)$/.exec(path);
  if (jwks) {
    if (req.method !== 'GET') throw new HttpError(405, { message: 'Method Not Allowed' });
    let clientId;
    try { clientId = decodeURIComponent(jwks[1]); } catch { clientId = ''; }
    if (!CLIENTS.has(clientId)) throw new HttpError(404, { message: `Client ${clientId} not found` });
    return sendJson(res, 200, { keys: [PUBLIC_JWK] });
  }
  const matches = ROUTES.filter(([, p]) => p === path);
  const hit = matches.find(([m]) => m === req.method);
  if (hit) return hit[2](req, res, url);
  if (matches.length) {
    res.setHeader('allow', matches.map(([m]) => m).join(', '));
    throw new HttpError(405, { message: 'Method Not Allowed' });
  }
  throw new HttpError(404, { message: 'Not Found' });
}

const server = http.createServer((req, res) => {
  let url;
  try {
    if (!req.url.startsWith('/')) throw new Error('not origin-form');
    url = new URL(`http://127.0.0.1${req.url}`);
  } catch {
    url = null;
  }
  const path = url ? url.pathname : '(bad-url)';
  const logPath = path.length > 200 ? `${path.slice(0, 200)}...` : path;
  res.on('close', () => {
    if (!QUIET) process.stderr.write(`${req.method} ${logPath} ${res.writableFinished ? res.statusCode : 'no-response'}\n`);
  });
  if (url && !path.startsWith('/__admin/')) {
    const key = `${req.method} ${logPath}`;
    if (key in stats.requests || Object.keys(stats.requests).length < 1000) stats.requests[key] = (stats.requests[key] ?? 0) + 1;
  }
  if (!url) return sendJson(res, 400, { message: 'Bad request target' });
  Promise.resolve()
    .then(() => handle(req, res, url))
    .catch((err) => {
      if (res.headersSent || res.destroyed) return;
      if (err instanceof HttpError) {
        const headers = err.status === 413 ? { connection: 'close' } : {};
        return typeof err.body === 'string' ? sendHtml(res, err.status, err.body) : sendJson(res, err.status, err.body, headers);
      }
      process.stderr.write(`workos-idp: internal error: ${err?.stack ?? err}\n`);
      sendJson(res, 500, { message: 'Internal error in the test IdP' });
    })
    .finally(() => { if (!res.writableEnded && !res.destroyed && !hungSockets.has(req.socket)) req.resume(); });
});

server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  else socket.destroy();
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('uncaughtException', (err) => process.stderr.write(`workos-idp: uncaught: ${err?.stack ?? err}\n`));

server.listen(CLI.port, '127.0.0.1', () => {
  BASE = `http://127.0.0.1:${server.address().port}`;
  process.stdout.write(`listening ${BASE}\n`);
});
server.on('error', (err) => die(`cannot listen on 127.0.0.1:${CLI.port}: ${err.message}`));
