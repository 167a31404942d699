#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

// The store and the context commands (`contexts`, `switch`, `current`, `rename`) through the
// real binary: output formats, pointers, corrupt files, permissions, locks, races and crashes.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A sandbox whose `config.toml` holds `contexts` (key, name) and, optionally, a `current`.
fn store(contexts: &[(impl AsRef<str>, impl AsRef<str>)], current: Option<&str>) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(&store_text(contexts, current));
    sb
}

fn store_text(contexts: &[(impl AsRef<str>, impl AsRef<str>)], current: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(key) = current {
        text.push_str(&format!("current = \"{key}\"\n\n"));
    }
    for (key, name) in contexts {
        text.push_str(&context_toml(key.as_ref(), name.as_ref()));
    }
    text
}

/// acme (org_acme, current) and globex (org_globex).
fn two() -> Sandbox {
    store(
        &[("org_acme", "acme"), ("org_globex", "globex")],
        Some("org_acme"),
    )
}

/// acme (org_acme, current), globex (org_globex) and initech (org_initech).
fn three() -> Sandbox {
    store(
        &[
            ("org_acme", "acme"),
            ("org_globex", "globex"),
            ("org_initech", "initech"),
        ],
        Some("org_acme"),
    )
}

/// `n` contexts: ctx-0 (org_000), ctx-1 (org_001), ...
fn numbered(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("org_{i:03}"), format!("ctx-{i}")))
        .collect()
}

/// The organization id of the current context, as `contexts -o json` reports it.
fn current_org(sb: &Sandbox) -> Option<String> {
    sb.contexts_json()
        .iter()
        .find(|c| c["current"] == true)
        .map(|c| c["organization_id"].as_str().unwrap().to_string())
}

fn name_of(sb: &Sandbox, key: &str) -> String {
    sb.config()["contexts"][key]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

fn current_name(sb: &Sandbox) -> String {
    let run = sb.run(&["current"]);
    run.ok();
    run.stdout.trim_end().to_string()
}

/// Names of the files a crashed or failed write could leave behind in the config dir.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// contexts

#[test]
fn contexts_table_marks_the_current_context_and_sorts_by_name() {
    // Keys sort differently from names, so the order proves the sort is by name.
    let mut text = String::from("current = \"org_b\"\n\n");
    text.push_str(&context_toml("org_a", "zeta"));
    text.push_str(&context_toml("org_b", "mid"));
    text.push_str(&context_toml("_none", "alpha"));
    text.push_str(
        "[contexts.org_c]\nname = \"expired\"\nuser-id = \"user_c\"\nprovider = \"workos\"\n\
         issuer = \"https://api.workos.com\"\nclient-id = \"client_test\"\nmethod = \"pkce\"\n\
         storage = \"keychain\"\naccess-token-expires-at = \"2001-01-01T00:00:00Z\"\n\n\
         [contexts.org_d]\nname = \"fresh\"\nuser-id = \"user_d\"\nprovider = \"workos\"\n\
         issuer = \"https://api.workos.com\"\nclient-id = \"client_test\"\nmethod = \"pkce\"\n\
         storage = \"keychain\"\naccess-token-expires-at = \"2099-01-01T00:00:00Z\"\n\n\
         [contexts.org_e]\nname = \"stale\"\nuser-id = \"user_e\"\nprovider = \"workos\"\n\
         issuer = \"https://api.workos.com\"\nclient-id = \"client_test\"\nmethod = \"pkce\"\n\
         storage = \"keychain\"\nneeds-login = true\n\n",
    );
    let sb = Sandbox::new();
    sb.write_config(&text);

    let run = sb.run(&["contexts"]);
    run.ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["CURRENT", "NAME", "ORGANIZATION", "USER", "STATE"],
        "{}",
        run.stdout
    );
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| if r[0] == "*" { r[1] } else { r[0] })
        .collect();
    assert_eq!(
        names,
        ["alpha", "expired", "fresh", "mid", "stale", "zeta"],
        "{}",
        run.stdout
    );

    let starred: Vec<&str> = lines[1..]
        .iter()
        .filter(|l| l.starts_with('*'))
        .copied()
        .collect();
    assert_eq!(starred.len(), 1, "exactly one current row:\n{}", run.stdout);
    assert_eq!(
        starred[0].split_whitespace().collect::<Vec<_>>(),
        ["*", "mid", "org_b", "mid@example.com", "signed", "in"]
    );

    let row = |name: &str| -> &str {
        lines
            .iter()
            .find(|l| l.split_whitespace().any(|w| w == name))
            .unwrap()
    };
    // The no-organization session has no organization id; the user is the email if known,
    // else the user id; the state says what the user must know.
    assert!(
        row("alpha").contains(" - "),
        "no org id shown as -: {}",
        row("alpha")
    );
    assert!(row("expired").contains("user_c"), "{}", row("expired"));
    // STATE is the session's: an expired access token is refreshed on the next use.
    assert!(
        row("expired").trim_end().ends_with("signed in"),
        "{}",
        row("expired")
    );
    assert!(
        !run.stdout.contains("expires") && !run.stdout.contains(" ago"),
        "{}",
        run.stdout
    );
    assert!(
        row("fresh").trim_end().ends_with("signed in"),
        "{}",
        row("fresh")
    );
    assert!(row("stale").contains("needs login"), "{}", row("stale"));
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    // `ls` is the same command.
    let ls = sb.run(&["ls"]);
    ls.ok();
    assert_eq!(ls.stdout, run.stdout);
}

#[test]
fn contexts_json_follows_the_documented_schema() {
    let sb = Sandbox::new();
    sb.write_config(
        "current = \"org_acme\"\nprevious = \"_none\"\n\n\
         [contexts.org_acme]\nname = \"acme\"\norganization-name = \"Acme Corp\"\n\
         user-id = \"user_01\"\nemail = \"ada@acme.test\"\nprovider = \"oidc\"\n\
         issuer = \"https://idp.acme.test\"\nclient-id = \"cli_acme\"\nmethod = \"pkce\"\n\
         storage = \"keychain\"\naccess-token-expires-at = \"2099-01-01T00:00:00Z\"\n\
         signed-in-at = \"2024-05-01T12:00:00Z\"\n\n\
         [contexts._none]\nname = \"personal\"\nuser-id = \"user_02\"\nprovider = \"workos\"\n\
         issuer = \"https://api.workos.com\"\nclient-id = \"client_test\"\nmethod = \"device\"\n\
         storage = \"file\"\nneeds-login = true\n",
    );
    let run = sb.run(&["contexts", "-o", "json"]);
    run.ok();
    let items: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(items.len(), 2);

    let expected = [
        serde_json::json!({
            "name": "acme",
            "organization_id": "org_acme",
            "organization_name": "Acme Corp",
            "user": {"id": "user_01", "email": "ada@acme.test"},
            "current": true,
            "provider": {"kind": "oidc", "issuer": "https://idp.acme.test", "client_id": "cli_acme"},
            "storage": "keychain",
            "access_token_expires_at": "2099-01-01T00:00:00Z",
            "needs_login": false,
            "method": "pkce",
            "signed_in_at": "2024-05-01T12:00:00Z",
        }),
        serde_json::json!({
            "name": "personal",
            "organization_id": null,
            "organization_name": null,
            "user": {"id": "user_02", "email": null},
            "current": false,
            "provider": {"kind": "workos", "issuer": "https://api.workos.com", "client_id": "client_test"},
            "storage": "file",
            "access_token_expires_at": null,
            "needs_login": true,
            "method": "device",
            "signed_in_at": null,
        }),
    ];
    // The schema only grows: every documented field is present with its value (null included).
    for (item, want) in items.iter().zip(&expected) {
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(
                item.get(field),
                Some(value),
                "field {field:?} of {}",
                want["name"]
            );
        }
    }
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn contexts_name_prints_one_sorted_name_per_line() {
    let sb = store(
        &[("org_1", "zulu"), ("org_2", "alpha"), ("_none", "mike")],
        Some("org_1"),
    );
    let run = sb.run(&["contexts", "-o", "name"]);
    run.ok();
    assert_eq!(run.stdout, "alpha\nmike\nzulu\n");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn an_empty_store_says_so_on_stderr_only() {
    // No config dir at all, then a config.toml without contexts.
    let sb = Sandbox::new();
    for _ in 0..2 {
        let run = sb.run(&["contexts"]);
        run.ok();
        assert_eq!(run.stdout, "", "nothing on stdout");
        assert!(run.stderr.contains("No contexts"), "{}", run.stderr);
        assert!(run.stderr.contains("mycli login"), "{}", run.stderr);

        let json = sb.run(&["contexts", "-o", "json"]);
        json.ok();
        assert_eq!(
            serde_json::from_str::<Value>(&json.stdout).unwrap(),
            serde_json::json!([])
        );
        let names = sb.run(&["contexts", "-o", "name"]);
        names.ok();
        assert_eq!(names.stdout, "");

        sb.write_config("");
    }
}

// ---------------------------------------------------------------------------------------------
// switch

#[test]
fn switch_by_name_by_org_id_and_through_the_use_alias() {
    let sb = three();

    let run = sb.run(&["switch", "globex"]);
    run.ok();
    assert_eq!(run.stdout, "", "stdout is for data only");
    assert!(run.stderr.contains("globex"), "{}", run.stderr);
    assert_eq!(current_org(&sb).as_deref(), Some("org_globex"));
    assert_eq!(current_name(&sb), "globex");

    sb.run(&["switch", "org_initech"]).ok();
    assert_eq!(current_org(&sb).as_deref(), Some("org_initech"));
    assert_eq!(current_name(&sb), "initech");

    sb.run(&["use", "acme"]).ok();
    assert_eq!(current_org(&sb).as_deref(), Some("org_acme"));
    assert_eq!(current_name(&sb), "acme");

    // The other contexts are untouched by switching.
    let names: Vec<String> = sb
        .contexts_json()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["acme", "globex", "initech"]);
}

#[test]
fn switch_dash_toggles_between_the_last_two_contexts() {
    let sb = three();
    sb.run(&["switch", "globex"]).ok();

    sb.run(&["switch", "-"]).ok();
    assert_eq!(current_name(&sb), "acme");
    sb.run(&["switch", "-"]).ok();
    assert_eq!(current_name(&sb), "globex");
    sb.run(&["use", "-"]).ok();
    assert_eq!(current_name(&sb), "acme");
}

#[test]
fn switch_dash_without_a_previous_context_fails() {
    let sb = two();
    let before = sb.config_text();
    let run = sb.run(&["switch", "-"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("previous"), "{}", run.stderr);
    assert_eq!(sb.config_text(), before, "the store is unchanged");

    // With no store at all: the same words, and nothing is created.
    let empty = Sandbox::new();
    let run = empty.run(&["switch", "-"]);
    run.code(1);
    assert!(
        run.stderr.contains("no previous context") && !run.stderr.contains("named \"-\""),
        "{}",
        run.stderr
    );
    assert!(!empty.config_dir.exists());
}

#[test]
fn switch_to_an_unknown_name_lists_the_known_ones_and_suggests() {
    let sb = three();
    let before = sb.config_text();

    let run = sb.run(&["switch", "globx"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    for name in ["acme", "globex", "initech"] {
        assert!(run.stderr.contains(name), "lists {name}: {}", run.stderr);
    }
    assert!(
        run.stderr.contains("did you mean `globex`"),
        "{}",
        run.stderr
    );

    // Nothing close: still the known names, no wrong suggestion.
    let run = sb.run(&["use", "zzzzzzzz"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("acme, globex, initech"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("did you mean"), "{}", run.stderr);

    assert_eq!(sb.config_text(), before, "the store is unchanged");
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn switch_on_an_empty_store_points_to_login() {
    let sb = Sandbox::new();
    let run = sb.run(&["switch", "acme"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("mycli login"), "{}", run.stderr);
    assert!(!sb.path("config.toml").exists(), "no store conjured up");
}

// ---------------------------------------------------------------------------------------------
// current and --context

#[test]
fn current_prints_the_name_or_fails_with_a_hint() {
    let sb = two();
    let run = sb.run(&["current"]);
    run.ok();
    assert_eq!(run.stdout, "acme\n");
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    // Contexts, but none current.
    let sb = store(&[("org_acme", "acme")], None);
    let run = sb.run(&["current"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("no context is current"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert!(run.stderr.contains("mycli switch"), "{}", run.stderr);

    // No store at all.
    let run = Sandbox::new().run(&["current"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);

    // `current` names a context that was removed by hand.
    let sb = store(&[("org_acme", "acme")], Some("org_gone"));
    let run = sb.run(&["current"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("org_gone"), "{}", run.stderr);
}

#[test]
fn context_flag_and_env_select_for_one_command_only() {
    let sb = two();
    let before = std::fs::read(sb.path("config.toml")).unwrap();

    let run = sb.run(&["--context", "globex", "current"]);
    run.ok();
    assert_eq!(run.stdout, "globex\n");
    let run = sb.run(&["current", "--context", "org_globex"]);
    run.ok();
    assert_eq!(
        run.stdout, "globex\n",
        "by organization id, after the command"
    );

    let mut env = two();
    env.set("MYCLI_CONTEXT", "globex");
    let run = env.run(&["current"]);
    run.ok();
    assert_eq!(run.stdout, "globex\n");
    let run = env.run(&["--context", "acme", "current"]);
    run.ok();
    assert_eq!(run.stdout, "acme\n", "the flag beats the environment");

    assert_eq!(
        std::fs::read(sb.path("config.toml")).unwrap(),
        before,
        "config.toml is untouched"
    );
    assert_eq!(current_name(&sb), "acme");
    env.unset("MYCLI_CONTEXT");
    assert_eq!(current_name(&env), "acme");
}

#[test]
fn an_unknown_context_flag_fails() {
    let sb = two();
    let before = sb.config_text();
    for args in [
        vec!["--context", "nope", "current"],
        vec!["--context", "nope", "token"],
    ] {
        let run = sb.run(&args);
        run.code(1);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(run.stderr.contains("\"nope\""), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("acme, globex"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let mut env = two();
    env.set("MYCLI_CONTEXT", "nope");
    let run = env.run(&["current"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert_eq!(sb.config_text(), before);
}

// ---------------------------------------------------------------------------------------------
// rename

#[test]
fn rename_by_name_or_by_organization_id() {
    let sb = store(
        &[("org_acme", "acme"), ("org_globex", "globex")],
        Some("org_globex"),
    );
    let run = sb.run(&["rename", "acme", "acme-prod"]);
    run.ok();
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("acme-prod"), "{}", run.stderr);
    assert_eq!(name_of(&sb, "org_acme"), "acme-prod");

    sb.run(&["rename", "org_globex", "gx"]).ok();
    assert_eq!(name_of(&sb, "org_globex"), "gx");

    // The old name is gone, the new one works.
    sb.run(&["switch", "acme"]).code(1);
    sb.run(&["switch", "acme-prod"]).ok();
    assert_eq!(current_name(&sb), "acme-prod");
    let run = sb.run(&["contexts", "-o", "name"]);
    assert_eq!(run.stdout, "acme-prod\ngx\n");
}

#[test]
fn rename_onto_an_existing_name_is_refused() {
    let sb = two();
    let before = std::fs::read(sb.path("config.toml")).unwrap();
    let run = sb.run(&["rename", "acme", "globex"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(std::fs::read(sb.path("config.toml")).unwrap(), before);

    let run = sb.run(&["rename", "nope", "whatever"]);
    run.code(1);
    assert!(run.stderr.contains("acme, globex"), "{}", run.stderr);
    assert_eq!(std::fs::read(sb.path("config.toml")).unwrap(), before);
}

#[test]
fn renaming_the_current_context_keeps_it_current() {
    let sb = two();
    sb.run(&["switch", "globex"]).ok();
    sb.run(&["rename", "globex", "globex-eu"]).ok();
    assert_eq!(current_name(&sb), "globex-eu");
    assert_eq!(current_org(&sb).as_deref(), Some("org_globex"));
    // And `switch -` still knows where it came from.
    sb.run(&["rename", "acme", "acme-us"]).ok();
    sb.run(&["switch", "-"]).ok();
    assert_eq!(current_name(&sb), "acme-us");
}

#[test]
fn rename_to_an_invalid_name_is_a_usage_error() {
    let sb = two();
    let before = std::fs::read(sb.path("config.toml")).unwrap();
    for bad in ["-", "a b", "", "-x", "a/b", "tab\there"] {
        let run = sb.run(&["rename", "acme", bad]);
        run.code(2);
        assert_eq!(run.stdout, "", "{bad:?}");
        assert!(!run.stderr.is_empty(), "{bad:?} says why");
        if bad != "-x" {
            // ("-x" is an unknown option to the argument parser, which adds its own tip.)
            let lines: Vec<&str> = run.stderr.lines().collect();
            assert!(
                lines.len() == 2
                    && lines[0].starts_with("error: ")
                    && lines[1].starts_with("hint: "),
                "{bad:?}: one error line and a hint saying what a name may be: {run:#?}"
            );
        }
        assert_eq!(
            std::fs::read(sb.path("config.toml")).unwrap(),
            before,
            "{bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// corrupt config.toml

/// `base` with the line `from` replaced by `to`, and the 1-based number of that line.
fn break_line(base: &str, from: &str, to: &str) -> (String, usize) {
    let line = base.lines().position(|l| l == from).unwrap() + 1;
    let text: Vec<&str> = base
        .lines()
        .map(|l| if l == from { to } else { l })
        .collect();
    (text.join("\n") + "\n", line)
}

/// The line number in "..., line N: ..." of an error.
fn reported_line(stderr: &str) -> Option<usize> {
    let at = stderr.find(", line ")? + ", line ".len();
    let digits: String = stderr[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn a_corrupt_config_is_reported_with_path_and_line_and_left_untouched() {
    let base = store_text(
        &[("org_acme", "acme"), ("org_globex", "globex")],
        Some("org_acme"),
    );
    let cases = [
        (
            "unquoted pointer",
            break_line(&base, "current = \"org_acme\"", "current = org_acme"),
        ),
        (
            "missing `=` in a context",
            break_line(
                &base,
                "email = \"globex@example.com\"",
                "email \"globex@example.com\"",
            ),
        ),
        (
            "unterminated string",
            break_line(
                &base,
                "user-id = \"user_globex\"",
                "user-id = \"user_globex",
            ),
        ),
        (
            "wrong type",
            break_line(&base, "user-id = \"user_globex\"", "user-id = 42"),
        ),
        (
            "duplicate names",
            break_line(&base, "name = \"globex\"", "name = \"acme\""),
        ),
        (
            "a time that is not RFC 3339",
            break_line(
                &base,
                "email = \"globex@example.com\"",
                "signed-in-at = \"99999-99-99T99:99:99Z\"",
            ),
        ),
        (
            "a terminal escape in an email",
            break_line(
                &base,
                "email = \"globex@example.com\"",
                "email = \"globex\\u001b[2J@example.com\"",
            ),
        ),
    ];
    let commands: [&[&str]; 10] = [
        &["contexts"],
        &["ls", "-o", "json"],
        &["contexts", "-o", "name"],
        &["switch", "globex"],
        &["switch", "-"],
        &["rename", "acme", "acme2"],
        &["current"],
        &["--context", "acme", "current"],
        &["token"],
        &["--context", "acme", "token"],
    ];
    for (what, (text, line)) in &cases {
        let sb = Sandbox::new();
        sb.write_config(text);
        let path = sb.path("config.toml");
        for args in commands {
            let run = sb.run(args);
            let label = format!("{what}, `mycli {}`", args.join(" "));
            assert_eq!(run.code, Some(1), "{label}: {run:#?}");
            assert_eq!(run.stdout, "", "{label}");
            assert!(
                run.stderr.contains(&path.display().to_string()),
                "{label}: names the file: {}",
                run.stderr
            );
            let reported = reported_line(&run.stderr)
                .unwrap_or_else(|| panic!("{label}: no line number: {}", run.stderr));
            if *what == "duplicate names" {
                // Either of the two lines that carry the name is a fine answer.
                assert_eq!(
                    text.lines().nth(reported - 1),
                    Some("name = \"acme\""),
                    "{label}: {}",
                    run.stderr
                );
            } else {
                assert_eq!(reported, *line, "{label}: {}", run.stderr);
            }
            assert!(!run.stderr.contains("panicked"), "{label}: {}", run.stderr);
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                *text,
                "{label}: the file is byte-for-byte unchanged"
            );
            assert!(temp_files(&sb.config_dir).is_empty(), "{label}");
        }
    }
}

/// A broken `credentials.toml` fails a login before the user is asked: found after the
/// approval, it cost the approval and left the IdP's new session alive with nowhere to go.
#[test]
fn a_corrupt_credentials_file_fails_a_login_before_the_user_is_asked() {
    let idp = Idp::start();
    idp.scenario(serde_json::json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    sb.write_config("");
    let text = "[org_acme]\nrefresh-token = \"rt\"\n[org_globex\n";
    let path = sb.path("credentials.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    for store in ["file", "auto"] {
        sb.set("MYCLI_CREDENTIAL_STORE", store);
        let child = sb
            .cmd()
            .args(["login", "--org", "org_acme", "--device"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Were the code shown, it would be approved and the login would reach the store.
        let approved = wait_for(Duration::from_secs(3), || {
            idp.admin_status("/__admin/device/approve", serde_json::json!({}))
                .0
                == 200
        });
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{store}: {stderr}");
        assert!(!approved, "{store}: the user was asked first: {stderr}");
        assert!(
            stderr.contains(&format!("{}, line 3", path.display())),
            "{store}: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{store}");
        assert_eq!(idp.stats()["sessions_created"], 0, "{store}");
    }
}

// ---------------------------------------------------------------------------------------------
// files and directories

#[test]
fn the_first_login_creates_a_private_config_dir_and_store() {
    let idp = Idp::start();
    idp.scenario(serde_json::json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    let dir = sb.tmp.path().join("not/yet/there/mycli");
    sb.set("MYCLI_CONFIG_DIR", &dir.display().to_string());
    sb.use_idp(&idp);
    let mut child = sb
        .cmd()
        .args(["login", "--org", "org_acme", "--device"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    idp.approve_device(serde_json::json!({}));
    assert!(child.wait().unwrap().success());

    assert_eq!(mode(&dir), 0o700, "config dir");
    assert_eq!(mode(&dir.join("config.toml")), 0o600, "config.toml");
    assert_eq!(
        mode(&dir.join("credentials.toml")),
        0o600,
        "credentials.toml"
    );
    assert_eq!(not_private(&dir, &[]), Vec::<String>::new());
    assert_eq!(current_org(&sb).as_deref(), Some("org_acme"));
}

/// Everything under `dir` (but `skip`) that is not a 0700 directory or a 0600 file.
fn not_private(dir: &Path, skip: &[&Path]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        if !skip.contains(&path.as_path()) && mode(&path) != want {
            found.push(format!("{} is {:o}", path.display(), mode(&path)));
        }
        if path.is_dir() {
            found.extend(not_private(&path, skip));
        }
    }
    found
}

#[test]
fn writes_are_atomic_0600_and_locks_live_beside_the_store() {
    let sb = two();
    let config = sb.path("config.toml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Whatever `switch` writes (the pointers, caches, locks) is private.
    sb.run(&["switch", "globex"]).ok();
    assert_eq!(
        not_private(&sb.config_dir, &[&config]),
        Vec::<String>::new()
    );
    let lock = sb.path("locks/config.lock");
    assert!(lock.is_file(), "the lock is a sidecar file under locks/");
    let lock_inode = std::fs::metadata(&lock).unwrap().ino();

    let inode_before = std::fs::metadata(&config).unwrap().ino();
    sb.run(&["rename", "acme", "acme-2"]).ok();
    assert_eq!(mode(&config), 0o600, "rewritten 0600");
    let inode_after = std::fs::metadata(&config).unwrap().ino();
    assert_ne!(
        inode_before, inode_after,
        "replaced by rename, not rewritten in place"
    );
    assert_ne!(lock_inode, inode_after);
    assert_eq!(not_private(&sb.config_dir, &[]), Vec::<String>::new());

    sb.run(&["rename", "globex", "globex-2"]).ok();
    assert_eq!(
        std::fs::metadata(&lock).unwrap().ino(),
        lock_inode,
        "the lock file is never replaced"
    );
    assert_eq!(
        std::fs::metadata(&lock).unwrap().len(),
        0,
        "never holds data"
    );
    assert_eq!(name_of(&sb, "org_acme"), "acme-2");
    assert_eq!(name_of(&sb, "org_globex"), "globex-2");
    assert_eq!(current_org(&sb).as_deref(), Some("org_globex"));
    assert!(temp_files(&sb.config_dir).is_empty());
}

#[test]
fn temporary_files_a_killed_writer_left_are_removed_by_the_next_write_once_old() {
    // A writer killed between creating its temporary file and renaming it leaves the file
    // behind, in whichever directory of the store it was writing: the store itself or the
    // derived caches under cache/ (which read-only commands rewrite).
    let sb = two();
    sb.run(&["contexts"]).ok();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let mut old = Vec::new();
    let mut young = Vec::new();
    for dir in [sb.config_dir.clone(), sb.path("cache")] {
        let abandoned = dir.join(".tmp-abandoned");
        std::fs::write(&abandoned, "killed").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&abandoned)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        old.push(abandoned);
        // One younger than a minute may be another writer's, still at work.
        let busy = dir.join(".tmp-busy");
        std::fs::write(&busy, "writing").unwrap();
        young.push(busy);
    }
    sb.run(&["rename", "acme", "acme-2"]).ok();
    for path in &old {
        assert!(!path.exists(), "{} outlived the next write", path.display());
    }
    for path in &young {
        assert!(path.exists(), "{} was removed while young", path.display());
    }
}

#[test]
fn config_dir_flag_beats_the_environment() {
    let a = two();
    let b = store(&[("org_initech", "initech")], None);
    let b_dir = b.config_dir.display().to_string();
    let a_before = a.config_text();

    let run = a.run(&["--config-dir", &b_dir, "contexts", "-o", "name"]);
    run.ok();
    assert_eq!(run.stdout, "initech\n");

    a.run(&["switch", "initech", "--config-dir", &b_dir]).ok();
    assert_eq!(current_org(&b).as_deref(), Some("org_initech"));
    assert_eq!(a.config_text(), a_before, "the env's dir is untouched");
    assert!(!a.path("locks").exists(), "not even locked");
}

// ---------------------------------------------------------------------------------------------
// pipes and terminals

#[test]
fn a_reader_that_stops_early_ends_the_listing_quietly() {
    let contexts: Vec<(String, String)> = (0..3000)
        .map(|i| {
            (
                format!("org_{i:05}"),
                format!("a-rather-long-context-name-number-{i:05}"),
            )
        })
        .collect();
    let sb = store(&contexts, Some("org_00000"));

    for (args, first) in [
        (vec!["contexts"], "CURRENT"),
        (vec!["contexts", "-o", "json"], "["),
        (
            vec!["ls", "-o", "name"],
            "a-rather-long-context-name-number-00000",
        ),
    ] {
        let mut child = sb
            .cmd()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(first), "{args:?}: {line:?}");
        drop(reader); // like `| head -1`
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {status:?} {stderr}");
        assert_eq!(stderr, "", "{args:?}: silent on a closed pipe");
    }
}

#[test]
fn errors_carry_no_colour_off_a_terminal_or_with_no_color() {
    let sb = two();
    let run = sb.run(&["switch", "nope"]);
    run.code(1);
    assert!(run.stderr.contains("error:"), "{}", run.stderr);
    assert!(!run.stderr.contains('\x1b'), "piped: {:?}", run.stderr);

    let mut no_color = two();
    no_color.set("NO_COLOR", "1");
    let run = no_color.run(&["switch", "nope"]);
    run.code(1);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
}

/// Runs the binary under `script(1)`, so that stdout and stderr are a terminal.
#[cfg(target_os = "linux")]
fn on_a_terminal(sb: &Sandbox, args: &str) -> (Option<i32>, String) {
    let out = sb
        .terminal_cmd(&format!("'{BIN}' {args}"))
        .output()
        .expect("script(1) from util-linux runs the binary on a terminal");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn errors_are_coloured_on_a_terminal_unless_no_color() {
    let mut sb = two();
    let (code, text) = on_a_terminal(&sb, "switch nope");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("\x1b["), "colour on a terminal: {text:?}");

    sb.set("NO_COLOR", "1");
    let (code, text) = on_a_terminal(&sb, "switch nope");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("error:"), "{text:?}");
    assert!(!text.contains('\x1b'), "NO_COLOR: {text:?}");
}

// ---------------------------------------------------------------------------------------------
// locks

#[test]
fn a_held_lock_ends_in_a_clear_error_not_a_hang() {
    let mut sb = two();
    sb.set("MYCLI_LOCK_TIMEOUT", "1");
    let before = sb.config_text();
    std::fs::create_dir_all(sb.path("locks")).unwrap();
    let lock_path = sb.path("locks/config.lock");
    // A hung mycli: an exclusive flock on the sidecar file, never released.
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    #[allow(clippy::disallowed_methods)] // a hung mycli holding the lock, played by hand
    holder.lock().unwrap();

    let commands: [&[&str]; 2] = [&["switch", "globex"], &["rename", "acme", "acme-2"]];
    for args in commands {
        let started = Instant::now();
        let run = sb.run(args);
        let took = started.elapsed();
        run.code(1);
        assert!(
            took >= Duration::from_millis(900),
            "{args:?} waited: {took:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{args:?} gave up in time: {took:?}"
        );
        assert_eq!(run.stdout, "");
        assert!(
            run.stderr.contains(&lock_path.display().to_string()),
            "{args:?} names the lock: {}",
            run.stderr
        );
        assert_eq!(sb.config_text(), before, "{args:?}");
    }

    // Readers do not wait for writers.
    let run = sb.run(&["contexts", "-o", "name"]);
    run.ok();
    assert_eq!(run.stdout, "acme\nglobex\n");
    assert_eq!(current_name(&sb), "acme");

    // Once the holder is gone, the same command works.
    drop(holder);
    sb.run(&["switch", "globex"]).ok();
    assert_eq!(current_name(&sb), "globex");
}

// ---------------------------------------------------------------------------------------------
// concurrency and crashes

#[test]
fn concurrent_switches_and_renames_lose_no_update() {
    const PROCS: usize = 16;
    const ROUNDS: usize = 4;
    let mut contexts: Vec<(String, String)> = (0..PROCS)
        .map(|i| (format!("org_{i:02}"), format!("ctx-{i}")))
        .collect();
    contexts.extend((0..20).map(|j| (format!("org_by{j:02}"), format!("bystander-{j}"))));
    let mut sb = store(&contexts, Some("org_by00"));
    // The point is lost updates, not lock fairness on a loaded machine.
    sb.set("MYCLI_LOCK_TIMEOUT", "60");
    let sb = Arc::new(sb);
    let barrier = Arc::new(Barrier::new(PROCS));

    let workers: Vec<_> = (0..PROCS)
        .map(|i| {
            let sb = Arc::clone(&sb);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut failures = Vec::new();
                let mut name = format!("ctx-{i}");
                for round in 1..=ROUNDS {
                    let next = format!("ctx-{i}-r{round}");
                    // Alternate between addressing the context by name and by org id.
                    let old = if round % 2 == 0 {
                        format!("org_{i:02}")
                    } else {
                        name.clone()
                    };
                    for args in [
                        vec!["rename".to_string(), old, next.clone()],
                        vec!["switch".to_string(), next.clone()],
                    ] {
                        let run = sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
                        if run.code != Some(0) {
                            failures.push(format!("{args:?}: {run:?}"));
                        }
                    }
                    name = next;
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");

    let config = sb.config();
    let table = config["contexts"].as_table().unwrap();
    assert_eq!(table.len(), PROCS + 20, "every context is present");
    for i in 0..PROCS {
        assert_eq!(
            table[&format!("org_{i:02}")]["name"].as_str(),
            Some(format!("ctx-{i}-r{ROUNDS}").as_str()),
            "the last rename of ctx-{i} survived"
        );
    }
    for j in 0..20 {
        assert_eq!(
            table[&format!("org_by{j:02}")]["name"].as_str(),
            Some(format!("bystander-{j}").as_str())
        );
    }
    // The last switch of some worker won; `switch -` finds the one before it.
    let finals: Vec<String> = (0..PROCS).map(|i| format!("ctx-{i}-r{ROUNDS}")).collect();
    assert!(finals.contains(&current_name(&sb)), "{}", current_name(&sb));
    sb.run(&["switch", "-"]).ok();
    let previous = current_name(&sb);
    assert!(
        previous.starts_with("ctx-") || previous.starts_with("bystander-"),
        "{previous}"
    );
    assert!(temp_files(&sb.config_dir).is_empty());
}

/// A small deterministic PRNG (xorshift64*), enough to scatter kill times.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Runs `mycli ARGS` and SIGKILLs it within 40 ms (or after it ended); how it ended.
fn kill_at_random(
    sb: &Sandbox,
    args: &[impl AsRef<std::ffi::OsStr>],
    rng: &mut Rng,
) -> std::process::ExitStatus {
    let mut child = sb
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_micros(rng.below(40_000)));
    let _ = child.kill(); // SIGKILL
    child.wait().unwrap()
}

#[test]
fn killing_writers_at_random_moments_never_tears_the_store() {
    const CONTEXTS: usize = 300;
    const KILLS: usize = 150;
    let contexts = numbered(CONTEXTS);
    let sb = store(&contexts, Some("org_000"));
    let mut rng = Rng::from_clock();
    let deadline = Instant::now() + Duration::from_secs(20);

    let mut killed = 0;
    let mut finished = 0;
    for iter in 0..KILLS {
        if Instant::now() > deadline {
            break;
        }
        let org = format!("org_{:03}", rng.below(CONTEXTS as u64));
        let args = if rng.below(2) == 0 {
            vec!["switch".to_string(), org]
        } else {
            vec!["rename".to_string(), org, format!("renamed-{iter}")]
        };
        let status = kill_at_random(&sb, &args, &mut rng);
        if status.signal() == Some(libc::SIGKILL) {
            killed += 1;
        } else {
            assert_eq!(status.code(), Some(0), "{args:?} failed on its own");
            finished += 1;
        }

        let text = sb.config_text();
        let config: toml::Table = toml::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "after kill {iter} ({args:?}) config.toml does not parse ({} bytes): {e}",
                text.len()
            )
        });
        let table = config
            .get("contexts")
            .and_then(|c| c.as_table())
            .unwrap_or_else(|| panic!("after kill {iter} ({args:?}) the contexts are gone"));
        assert_eq!(table.len(), CONTEXTS, "after kill {iter} ({args:?})");
        for i in 0..CONTEXTS {
            let ctx = &table[&format!("org_{i:03}")];
            assert_eq!(
                ctx["user-id"].as_str(),
                Some(format!("user_ctx-{i}").as_str())
            );
        }
        // The pointers, wherever they live, are intact and point at a context.
        let current = sb.run(&["current"]);
        assert_eq!(
            current.code,
            Some(0),
            "after kill {iter} ({args:?}): {current:?}"
        );
    }
    eprintln!(
        "{killed} killed, {finished} finished, {} temporary files left behind",
        temp_files(&sb.config_dir).len()
    );
    assert!(
        killed >= 10,
        "the kills must land while mycli runs ({killed} killed, {finished} finished)"
    );
    let run = sb.run(&["contexts", "-o", "name"]);
    run.ok();
    assert_eq!(run.stdout.lines().count(), CONTEXTS);
    sb.run(&["current"]).ok();
}

#[test]
fn killing_the_first_write_to_a_hand_written_store_keeps_its_pointers() {
    const CONTEXTS: usize = 300;
    let contexts = numbered(CONTEXTS);
    // As a user writes it: the pointers at the top of config.toml.
    let text = format!(
        "previous = \"org_001\"\n{}",
        store_text(&contexts, Some("org_000"))
    );
    let mut rng = Rng::from_clock();
    let deadline = Instant::now() + Duration::from_secs(15);

    let mut killed = 0;
    for iter in 0..80 {
        if Instant::now() > deadline {
            break;
        }
        let sb = Sandbox::new();
        sb.write_config(&text);
        let org = format!("org_{:03}", 2 + rng.below(CONTEXTS as u64 - 2));
        if kill_at_random(&sb, &["rename", &org, "renamed"], &mut rng).signal()
            == Some(libc::SIGKILL)
        {
            killed += 1;
        }
        let run = sb.run(&["current"]);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (Some(0), "ctx-0\n"),
            "after kill {iter} of `rename {org}`: {run:?}"
        );
        sb.run(&["switch", "-"]).ok();
        assert_eq!(current_name(&sb), "ctx-1", "after kill {iter}");
    }
    assert!(killed >= 10, "only {killed} kills landed");
}

// ---------------------------------------------------------------------------------------------
// The derived index
// ---------------------------------------------------------------------------------------------

#[test]
fn a_truncated_index_is_ignored_and_never_shortens_the_store() {
    let sb = three();
    sb.run(&["contexts"]).ok();
    let index = sb.path("cache/config.index");
    let text = std::fs::read_to_string(&index).expect("`contexts` wrote the index");
    // A torn write that lost the last line (the index is written without fsync).
    let cut = text.trim_end_matches('\n').rfind('\n').unwrap();
    std::fs::write(&index, &text[..=cut]).unwrap();

    let run = sb.run(&["contexts", "-o", "name"]);
    run.ok();
    assert_eq!(
        run.stdout, "acme\nglobex\ninitech\n",
        "read through a short index"
    );
    // A write starts from config.toml, even when the index looks current.
    std::fs::write(&index, &text[..=cut]).unwrap();
    sb.run(&["rename", "acme", "acme-prod"]).ok();
    let config = sb.config();
    let keys: Vec<&String> = config["contexts"].as_table().unwrap().keys().collect();
    assert_eq!(keys, ["org_acme", "org_globex", "org_initech"]);
    assert_eq!(name_of(&sb, "org_acme"), "acme-prod");
    let run = sb.run(&["contexts", "-o", "name"]);
    assert_eq!(run.stdout, "acme-prod\nglobex\ninitech\n");
}
