#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The daily loop, as a user coming from gh, kubectl and gcloud meets it: re-login with what a
//! context remembers, readable organizations, the table, completion, logout, help.

mod common;

use common::*;
use serde_json::{Value, json};

/// A sandbox whose BROWSER follows the authorize redirect with curl (PKCE end to end).
fn browser_sandbox(idp: &Idp) -> Sandbox {
    let mut sb = Sandbox::new();
    let browser = sb.curl_browser();
    sb.set("BROWSER", &browser.display().to_string());
    sb.set("MYCLI_LOGIN_TIMEOUT", "20");
    let _ = idp;
    sb
}

fn context_of<'a>(contexts: &'a [Value], org: &str) -> &'a Value {
    contexts
        .iter()
        .find(|c| c["organization_id"] == org)
        .unwrap_or_else(|| panic!("no context for {org}: {contexts:#?}"))
}

// ---------------------------------------------------------------------------------------------
// 1. Re-login reuses what the context remembers
// ---------------------------------------------------------------------------------------------

#[test]
fn relogin_uses_the_provider_the_context_remembers() {
    let idp = Idp::start();
    let mut sb = browser_sandbox(&idp);
    let oidc = format!("{}/oidc", idp.base);
    // Signed in with environment variables (an OIDC provider) ...
    sb.set("MYCLI_PROVIDER", "oidc")
        .set("MYCLI_ISSUER", &oidc)
        .set("MYCLI_CLIENT_ID", "client_test");
    sb.run(&["login", "--org", "org_acme", "--name", "acme"])
        .ok();
    // ... and the session dies.
    idp.admin("/__admin/revoke-session", json!({}));
    let run = sb.run(&["refresh", "acme"]);
    run.code(4);
    assert!(
        run.stderr.contains("mycli login --org org_acme"),
        "{}",
        run.stderr
    );

    // In a shell without those variables the printed hint works as printed.
    sb.unset("MYCLI_PROVIDER")
        .unset("MYCLI_ISSUER")
        .unset("MYCLI_CLIENT_ID");
    let run = sb.run(&["login", "--org", "org_acme"]);
    run.ok();
    assert!(run.stderr.contains("Signed in"), "{}", run.stderr);
    let ctx = context_of(&sb.contexts_json(), "org_acme").clone();
    assert_eq!(ctx["name"], "acme");
    assert_eq!(ctx["needs_login"], false);
    assert_eq!(ctx["provider"]["kind"], "oidc");
    assert_eq!(ctx["provider"]["issuer"], oidc.as_str());
    sb.run(&["token", "--context", "acme"]).ok();

    // `login --context NAME` renews that context the same way.
    let before = idp.stats()["grants"]["authorization_code"]
        .as_u64()
        .unwrap();
    let run = sb.run(&["login", "--context", "acme", "--force"]);
    run.ok();
    assert!(run.stderr.contains("\"acme\""), "{}", run.stderr);
    assert_eq!(
        idp.stats()["grants"]["authorization_code"]
            .as_u64()
            .unwrap(),
        before + 1
    );
    let ctx = context_of(&sb.contexts_json(), "org_acme").clone();
    assert_eq!(ctx["provider"]["kind"], "oidc");

    // An unknown --context is the usual unknown-context error, before any sign-in.
    let run = sb.run(&["login", "--context", "acmee"]);
    run.code(1);
    assert!(run.stderr.contains("did you mean `acme`"), "{}", run.stderr);
}

#[test]
fn an_oidc_issuer_used_as_workos_says_which_flag_to_add() {
    let idp = Idp::start();
    let sb = Sandbox::new();
    let oidc = format!("{}/oidc", idp.base);
    let run = sb.run(&[
        "login",
        "--org",
        "org_acme",
        "--issuer",
        &oidc,
        "--client-id",
        "client_test",
        "--device",
    ]);
    run.code(2);
    assert!(
        run.stderr.contains("OpenID Connect") && run.stderr.contains("--provider oidc"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("unrecognized route"), "{}", run.stderr);

    // And the reverse: a WorkOS API configured as an OIDC issuer.
    let run = sb.run(&[
        "login",
        "--org",
        "org_acme",
        "--provider",
        "oidc",
        "--issuer",
        &idp.base,
        "--client-id",
        "client_test",
        "--device",
    ]);
    run.code(2);
    assert!(
        run.stderr.contains("WorkOS") && run.stderr.contains("--provider workos"),
        "{}",
        run.stderr
    );
    assert!(!sb.path("config.toml").exists());
}
