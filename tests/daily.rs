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

// ---------------------------------------------------------------------------------------------
// 2. Organizations by name
// ---------------------------------------------------------------------------------------------

/// `login ARGS --device` on the WorkOS fake, approved as alice; WorkOS asks which organization.
fn device_login_with_selection(idp: &Idp, sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["login", "--device"];
    all.extend_from_slice(args);
    let bg = sb.spawn(&all);
    idp.approve_device(json!({}));
    bg.finish(std::time::Duration::from_secs(30)).0
}

#[test]
fn workos_organization_names_name_the_contexts_and_the_table() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "device_ignores_org": true,
        "org_selection_public": true}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    // A name taken by hand first: the default name must stay unique.
    let run = device_login_with_selection(
        &idp,
        &sb,
        &["--org", "org_acme", "--name", "globex-corporation"],
    );
    run.ok();
    let run = device_login_with_selection(&idp, &sb, &["--org", "org_globex"]);
    run.ok();
    assert!(
        run.stderr.contains("Globex Corporation (org_globex)")
            && run.stderr.contains("\"globex-corporation-2\""),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("mycli rename"), "{}", run.stderr);
    let contexts = sb.contexts_json();
    let globex = context_of(&contexts, "org_globex");
    assert_eq!(globex["name"], "globex-corporation-2");
    assert_eq!(globex["organization_name"], "Globex Corporation");
    assert_eq!(
        context_of(&contexts, "org_acme")["organization_name"],
        "Acme Corp"
    );

    // The table shows the organization's name, not its id twice.
    let table = sb.run(&["contexts"]);
    table.ok();
    let row = table
        .stdout
        .lines()
        .find(|l| l.contains("globex-corporation-2"))
        .unwrap();
    assert!(row.contains("Globex Corporation"), "{}", table.stdout);
    assert!(!row.contains("org_globex"), "{}", table.stdout);
    // status shows it too.
    let status = sb.run(&["status", "globex-corporation-2"]);
    assert!(
        status.stdout.contains("Globex Corporation (org_globex)"),
        "{}",
        status.stdout
    );
}

#[test]
fn a_context_named_after_its_id_says_how_to_rename_it() {
    let idp = Idp::start();
    let sb = browser_sandbox(&idp);
    let mut sb = sb;
    sb.use_idp(&idp);
    let run = sb.run(&["login", "--org", "org_acme"]);
    run.ok();
    let name = context_of(&sb.contexts_json(), "org_acme")["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(name, "org_acme");
    assert!(
        run.stderr.contains("mycli rename org_acme NEW_NAME"),
        "{}",
        run.stderr
    );
    // --name wins, and then there is nothing to rename.
    let run = sb.run(&["login", "--org", "org_globex", "--name", "globex"]);
    run.ok();
    assert!(!run.stderr.contains("mycli rename"), "{}", run.stderr);
}
