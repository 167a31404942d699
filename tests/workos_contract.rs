#![allow(clippy::unwrap_used, clippy::expect_used)]
//! WorkOS's documented answers of `POST /user_management/authenticate`, replayed byte for byte
//! through mycli's own HTTP client and token parser: both error shapes (OAuth's
//! `error`/`error_description`, WorkOS's `code`/`message`), the `organization_selection_required`
//! step-up, and a sign-in with and without `impersonator`. The bodies are the ones in WorkOS's
//! API reference (`UserlandAuthenticateResponse`, authentication errors); when WorkOS changes a
//! shape, change it here first.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::http::{Response, serve};
use mycli::auth::{self, Http, IdpError, Provider, ProviderConfig, Reply, Session};
use mycli::secret::Secret;
use mycli::time::Clock;
use mycli::ui::Ui;
use mycli::vocab::{ProviderDefaults, ProviderKind};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const ORG: &str = "org_01H93RZAP85YGYZJXYPAZ9QTXF";

/// Refreshes once against a server that answers `status` with `body`, as WorkOS would.
fn replay(status: u16, body: Value) -> Reply<Session> {
    let server = serve(move |req| {
        assert_eq!(req.path, "/user_management/authenticate");
        Response::new(status, "application/json", body.to_string())
    });
    let config = ProviderConfig::of_session(
        ProviderKind::Workos,
        &server.base,
        "client_01H93RZAP85YGYZJXYPAZ9QTXF",
        &ProviderDefaults::default(),
    );
    let http = Http::new(Ui::new(true, false), Clock::fixed(NOW)).unwrap();
    auth::block_on(async {
        let provider = Provider::discover(&http, config).await?;
        provider
            .refresh(&http, &Secret::new("yAjhKk123"), Some(ORG))
            .await
    })
    .unwrap()
}

fn refused(reply: Reply<Session>) -> IdpError {
    match reply {
        Reply::Refused(err) => err,
        Reply::Ok(_) => panic!("an error answer was read as a session"),
    }
}

fn session(reply: Reply<Session>) -> Session {
    match reply {
        Reply::Ok(session) => session,
        Reply::Refused(err) => panic!("a sign-in was read as an error: {}", err.summary()),
    }
}

/// An access token as WorkOS signs it (the signature is not checked on the client).
fn access_token(claims: Value) -> String {
    let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        part(json!({"alg": "RS256", "kid": "sso_oidc_key_pair_01H"})),
        part(claims)
    )
}

/// `UserlandAuthenticateResponse`, as documented.
fn authenticated() -> Value {
    json!({
        "user": {
            "object": "user",
            "id": "user_01E4ZCR3C56J083X43JQXF3JK5",
            "email": "marcelina.davis@example.com",
            "email_verified": true,
            "first_name": "Marcelina",
            "last_name": "Davis",
            "name": null,
            "profile_picture_url": null,
            "external_id": null,
            "metadata": {},
            "last_sign_in_at": "2026-11-27T10:00:00.000Z",
            "locale": null,
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-11-27T10:00:00.000Z"
        },
        "organization_id": ORG,
        "access_token": access_token(json!({
            "iss": "https://api.workos.com",
            "sub": "user_01E4ZCR3C56J083X43JQXF3JK5",
            "sid": "session_01H93RZAP85YGYZJXYPAZ9QTXF",
            "org_id": ORG,
            "exp": NOW + 300,
            "iat": NOW
        })),
        "refresh_token": "yAjhKk123NewRotated",
        "authentication_method": "SSO"
    })
}

#[test]
fn the_oauth_error_shape_is_read() {
    let err = refused(replay(
        400,
        json!({"error": "invalid_grant", "error_description": "Session has already ended."}),
    ));
    assert_eq!(err.status, 400);
    assert!(err.is("invalid_grant"));
    assert_eq!(err.summary(), "invalid_grant: Session has already ended.");
}

#[test]
fn the_workos_error_shape_is_read() {
    let err = refused(replay(
        400,
        json!({"code": "invalid_pending_authentication_token",
               "message": "Pending authentication token is invalid."}),
    ));
    assert!(err.is("invalid_pending_authentication_token"));
    assert_eq!(
        err.description.as_deref(),
        Some("Pending authentication token is invalid.")
    );
    let err = refused(replay(429, json!({"code": "daily_quota_exceeded"})));
    assert!(err.is("daily_quota_exceeded"));
    let err = refused(replay(
        400,
        json!({"message": "Must use SSO for selected organization"}),
    ));
    assert_eq!(
        err.summary(),
        "HTTP 400: Must use SSO for selected organization"
    );
}

#[test]
fn organization_selection_required_keeps_its_token_and_organizations() {
    let err = refused(replay(
        403,
        json!({
            "code": "organization_selection_required",
            "message": "The user must choose an organization to finish their authentication.",
            "pending_authentication_token": "YQyCkYfuVw2mI3tzSrk2C1Y7S",
            "organizations": [
                {"id": "org_01H93RZAP85YGYZJXYPAZ9QTXF", "name": "Foo Corp"},
                {"id": "org_01H93S4E6GB5A8PFNKGTA4S42X", "name": "Bar Corp"}
            ],
            "user": {"object": "user", "id": "user_01E4ZCR3C56J083X43JQXF3JK5"}
        }),
    ));
    assert_eq!(err.status, 403);
    assert!(err.is("organization_selection_required"));
    assert_eq!(
        err.body["pending_authentication_token"],
        "YQyCkYfuVw2mI3tzSrk2C1Y7S"
    );
    assert_eq!(err.body["organizations"][1]["name"], "Bar Corp");
}

#[test]
fn an_authenticate_answer_becomes_a_session() {
    let s = session(replay(200, authenticated()));
    assert_eq!(s.user_id, "user_01E4ZCR3C56J083X43JQXF3JK5");
    assert_eq!(s.email.as_deref(), Some("marcelina.davis@example.com"));
    assert_eq!(s.organization_id.as_deref(), Some(ORG));
    // No expires_in from WorkOS: the expiry is the access token's exp.
    assert_eq!(s.expires_at, NOW + 300);
    assert_eq!(
        s.refresh_token.as_ref().map(Secret::expose),
        Some("yAjhKk123NewRotated")
    );
}

#[test]
fn an_impersonated_sign_in_reads_the_same() {
    let mut body = authenticated();
    body["authentication_method"] = json!("Impersonation");
    body["impersonator"] = json!({"email": "admin@foocorp.com", "reason": "Debugging a ticket"});
    let s = session(replay(200, body));
    assert_eq!(s.user_id, "user_01E4ZCR3C56J083X43JQXF3JK5");
    assert_eq!(s.organization_id.as_deref(), Some(ORG));
    assert_eq!(s.expires_at, NOW + 300);
}
