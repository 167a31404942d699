#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;

#[test]
fn device_login_against_the_workos_test_idp() {
    let idp = Idp::start();
    idp.scenario(serde_json::json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let mut child = sb
        .cmd()
        .args(["login", "--org", "org_acme", "--device"])
        .spawn()
        .unwrap();
    idp.approve_device(serde_json::json!({}));
    assert!(child.wait().unwrap().success());
    let ctx = sb.contexts_json();
    assert_eq!(ctx[0]["organization_id"], "org_acme");
}

#[test]
fn with_no_context_at_all_token_and_status_ask_for_a_login() {
    let sb = Sandbox::new();
    for args in [&["token"][..], &["status"], &["refresh"]] {
        let run = sb.run(args);
        run.code(4);
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains("mycli login --org"), "{run:#?}");
    }
    // `current` with none is a plain failure (spec §3), not a login request.
    sb.run(&["current"]).code(1);
}

#[test]
fn a_broken_config_is_reported_even_when_the_token_is_cached() {
    let idp = Idp::start();
    idp.scenario(serde_json::json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let child = sb
        .cmd()
        .args(["login", "--org", "org_acme", "--device"])
        .spawn()
        .unwrap();
    idp.approve_device(serde_json::json!({}));
    assert!(child.wait_with_output().unwrap().status.success());
    sb.run(&["token"]).ok();

    let broken = sb
        .config_text()
        .replace("method = \"device\"", "method = device");
    std::fs::write(sb.path("config.toml"), &broken).unwrap();
    let run = sb.run(&["token"]);
    run.code(1);
    assert_eq!(run.stdout, "", "a token was handed out from a broken store");
    assert!(run.stderr.contains("config.toml, line "), "{run:#?}");
    assert_eq!(sb.config_text(), broken);
}

fn device_login(sb: &Sandbox, idp: &Idp, org: &str) {
    let child = sb
        .cmd()
        .args(["login", "--org", org, "--device"])
        .spawn()
        .unwrap();
    idp.approve_device(serde_json::json!({}));
    assert!(child.wait_with_output().unwrap().status.success());
}

#[test]
fn logging_out_of_a_session_the_idp_already_ended_says_so() {
    let idp = Idp::start();
    idp.scenario(serde_json::json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    device_login(&sb, &idp, "org_acme");
    idp.admin("/__admin/revoke-session", serde_json::json!({}));
    // Without a cached token, `token` refreshes and learns that the session was ended.
    std::fs::remove_dir_all(sb.path("tokens")).unwrap();
    sb.run(&["token"]).code(4);

    let logouts = idp.stats()["logouts"].as_u64().unwrap_or(0);
    let run = sb.run(&["logout"]);
    run.ok();
    assert!(run.stderr.contains("had already ended"), "{run:#?}");
    assert!(!run.stderr.contains("may still be active"), "{run:#?}");
    assert_eq!(idp.stats()["logouts"].as_u64().unwrap_or(0), logouts);
    assert!(sb.contexts_json().is_empty());
}

#[test]
fn a_context_cannot_be_renamed_to_another_contexts_organization_id() {
    let sb = Sandbox::new();
    sb.write_config(&(context_toml("org_acme", "acme") + &context_toml("org_globex", "globex")));
    let before = sb.config_text();
    let run = sb.run(&["rename", "acme", "org_globex"]);
    run.code(1);
    assert!(
        run.stderr.contains("organization id of another context"),
        "{run:#?}"
    );
    assert!(
        run.stderr.lines().count() == 2 && run.stderr.lines().nth(1).unwrap().starts_with("hint: "),
        "{run:#?}"
    );
    assert_eq!(sb.config_text(), before);
    // --insecure-storage asks for the file, MYCLI_CREDENTIAL_STORE=keychain forbids it.
    let mut strict = Sandbox::new();
    strict.set("MYCLI_CREDENTIAL_STORE", "keychain");
    let run = strict.run(&[
        "login",
        "--insecure-storage",
        "--issuer",
        "https://idp.example.com",
        "--client-id",
        "client_test",
        "--org",
        "org_acme",
    ]);
    run.code(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].contains("conflicts") && lines[1].starts_with("hint: "),
        "{run:#?}"
    );
    // Its own organization id is fine as a name.
    sb.run(&["rename", "acme", "org_acme"]).ok();
}

#[test]
fn a_context_removed_by_hand_hands_out_no_token() {
    let idp = Idp::start();
    idp.scenario(serde_json::json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    device_login(&sb, &idp, "org_acme");
    sb.run(&["token"]).ok();
    // The user deletes the context from config.toml by hand; its cached token is still there.
    std::fs::write(sb.path("config.toml"), "").unwrap();
    let run = sb.run(&["token"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("does not exist"), "{run:#?}");
}
