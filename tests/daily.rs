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

/// The claim that names the organization is part of the provider a context remembers: a
/// `MYCLI_ORG_CLAIM` set later for another IdP must not break this one's refresh or re-login.
#[test]
fn an_oidc_context_keeps_the_org_claim_it_was_signed_in_with() {
    let idp = Idp::start();
    let mut sb = browser_sandbox(&idp);
    let oidc = format!("{}/oidc", idp.base);
    sb.run(&[
        "login",
        "--provider",
        "oidc",
        "--issuer",
        &oidc,
        "--client-id",
        "client_test",
        "--org",
        "org_acme",
        "--name",
        "acme",
    ])
    .ok();

    // Today's default names another claim, which this IdP does not send.
    sb.set("MYCLI_ORG_CLAIM", "tenant");
    let run = sb.run(&["refresh", "acme"]);
    run.ok();
    assert_eq!(
        claims(&printed_token(&sb.run(&["token", "--context", "acme"])))["org_id"],
        "org_acme"
    );
    let run2 = sb.run(&["login", "--org", "org_acme", "--force"]);
    run2.ok();
    assert!(run2.stderr.contains("Signed in"), "{}", run2.stderr);
    assert_eq!(
        context_of(&sb.contexts_json(), "org_acme")["needs_login"],
        false
    );

    // A new context reads today's claim.
    let run = sb.run(&[
        "login",
        "--provider",
        "oidc",
        "--issuer",
        &oidc,
        "--client-id",
        "client_test",
        "--org",
        "org_globex",
    ]);
    run.code(1);
    assert!(run.stderr.contains("no organization"), "{}", run.stderr);
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
fn organizations_with_the_same_long_name_get_names_the_store_accepts() {
    // Two organizations whose names slug to the longest name a context may have: the second
    // one's suffix must not make a name the store then refuses to read.
    let long = "A".repeat(64);
    let users = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        users.path(),
        json!({
            "organizations": [{"id": "org_one", "name": long}, {"id": "org_two", "name": long}],
            "users": [{"id": "user_alice", "email": "alice@example.com", "memberships": [
                {"organization_id": "org_one"}, {"organization_id": "org_two"}]}]
        })
        .to_string(),
    )
    .unwrap();
    let idp = Idp::start_with_users(users.path());
    idp.scenario(json!({"device_interval": 1, "device_ignores_org": true,
        "org_selection_public": true}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    device_login_with_selection(&idp, &sb, &["--org", "org_one"]).ok();
    device_login_with_selection(&idp, &sb, &["--org", "org_two"]).ok();
    // Read config.toml itself, not the index the login wrote.
    std::fs::remove_dir_all(sb.path("cache")).ok();
    let contexts = sb.contexts_json();
    let names: Vec<&str> = contexts
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{contexts:?}");
    assert!(
        names.iter().all(|n| n.chars().count() <= 64) && names[0] != names[1],
        "{names:?}"
    );
    sb.run(&["token"]).ok();
}

#[test]
fn an_organization_name_spelled_to_look_like_another_does_not_name_a_context() {
    // "Аcme" starts with a Cyrillic А: slugged as it is, it would make a context that looks
    // exactly like "acme" in every table and prompt.
    let users = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        users.path(),
        json!({
            "organizations": [{"id": "org_real", "name": "Acme"},
                              {"id": "org_spoof", "name": "\u{410}cme"},
                              {"id": "org_tokyo", "name": "東京 Acme"}],
            "users": [{"id": "user_alice", "email": "alice@example.com", "memberships": [
                {"organization_id": "org_real"}, {"organization_id": "org_spoof"},
                {"organization_id": "org_tokyo"}]}]
        })
        .to_string(),
    )
    .unwrap();
    let idp = Idp::start_with_users(users.path());
    idp.scenario(json!({"device_interval": 1, "device_ignores_org": true,
        "org_selection_public": true}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    for org in ["org_real", "org_spoof", "org_tokyo"] {
        device_login_with_selection(&idp, &sb, &["--org", org]).ok();
    }
    let contexts = sb.contexts_json();
    assert_eq!(context_of(&contexts, "org_real")["name"], "acme");
    assert_eq!(context_of(&contexts, "org_spoof")["name"], "org_spoof");
    // One script beside Latin is a name, not a disguise.
    assert_eq!(context_of(&contexts, "org_tokyo")["name"], "東京-acme");
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

// ---------------------------------------------------------------------------------------------
// 4. The table
// ---------------------------------------------------------------------------------------------

/// Display width as a terminal shows it: CJK and emoji take two columns.
fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF => 2,
            0xFF00..=0xFF60 | 0x1F300..=0x1FAFF => 2,
            _ => 1,
        })
        .sum()
}

/// The display column where each line's `field`-th whitespace-separated field starts.
fn field_columns(text: &str, field: usize) -> Vec<usize> {
    text.lines()
        .map(|line| {
            let mut col = 0;
            let mut seen = 0;
            let mut in_word = false;
            for c in line.chars() {
                if c == ' ' {
                    in_word = false;
                } else if !in_word {
                    in_word = true;
                    seen += 1;
                    if seen == field {
                        return col;
                    }
                }
                col += display_width(&c.to_string());
            }
            usize::MAX
        })
        .collect()
}

fn wide_store() -> Sandbox {
    let sb = Sandbox::new();
    let long_email =
        "alice.with.a.really.long.email.address.for.testing@subsidiary.example-corporation.com";
    let mut text = String::from("current = \"org_cjk\"\n\n");
    text.push_str(&context_toml("org_cjk", "日本支社").replace(
        "email = \"日本支社@example.com\"",
        &format!("email = \"{long_email}\"\norganization-name = \"Acme Corp\""),
    ));
    text.push_str(&context_toml("org_emoji", "globex🚀"));
    text.push_str(&context_toml("org_plain", "initech"));
    sb.write_config(&text);
    sb
}

/// Runs `mycli ARGS` on a terminal of `cols` columns; what the terminal showed.
fn on_terminal(sb: &Sandbox, cols: u16, args: &str) -> String {
    let out = sb
        .terminal_cmd(&format!("stty rows 24 cols {cols}; '{BIN}' {args}"))
        .output()
        .expect("script(1) from util-linux runs the binary on a terminal");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

#[test]
fn the_table_aligns_wide_characters_by_display_width() {
    let sb = wide_store();
    let run = sb.run(&["contexts"]);
    run.ok();
    // Without the `*` column's marker, ORGANIZATION is the second field of every row but the
    // current one (third there); all start at the same display column.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    let org_col = |line: &str| {
        let field = if line.starts_with('*') || line.starts_with("CURRENT") {
            3
        } else {
            2
        };
        field_columns(line, field)[0]
    };
    let cols: Vec<usize> = lines.iter().map(|l| org_col(l)).collect();
    assert!(
        cols.iter().all(|c| *c == cols[0]),
        "{cols:?}\n{}",
        run.stdout
    );
    // Piped, nothing is cut and nothing trails.
    assert!(!run.stdout.contains('…'), "{}", run.stdout);
    assert!(run.stdout.contains("subsidiary.example-corporation.com"));
    assert!(lines.iter().all(|l| !l.ends_with(' ')), "{}", run.stdout);
}

#[test]
fn on_an_80_column_terminal_two_similar_names_stay_apart() {
    // Names are what `switch` and `--context` take: cut to a common prefix, two contexts of
    // different organizations looked the same in the most common terminal width.
    let sb = Sandbox::new();
    let email = "alice.anderson@acme-corporation.example";
    let mut text = String::new();
    for (key, name, org) in [
        (
            "org_east",
            "acme-production-eu-east",
            "Acme Production Europe East GmbH",
        ),
        (
            "org_west",
            "acme-production-eu-west",
            "Acme Production Europe West GmbH",
        ),
    ] {
        text.push_str(&context_toml(key, name).replace(
            &format!("email = \"{name}@example.com\""),
            &format!("email = \"{email}\"\norganization-name = \"{org}\""),
        ));
    }
    sb.write_config(&text);
    let shown = on_terminal(&sb, 80, "contexts");
    let lines: Vec<&str> = shown.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(lines.iter().all(|l| display_width(l) <= 80), "{shown}");
    assert!(
        shown.contains("acme-production-eu-east") && shown.contains("acme-production-eu-west"),
        "{shown}"
    );
    // `status --all` too (it exits 4: these contexts have no secret).
    let shown = on_terminal(&sb, 80, "status --all; true");
    assert!(
        shown.contains("acme-production-eu-east") && shown.contains("acme-production-eu-west"),
        "{shown}"
    );
    // Narrower than the names themselves: cut, but never wrapped, never a panic.
    for cols in [1, 12, 30] {
        let shown = on_terminal(&sb, cols, "contexts");
        assert_eq!(
            shown.lines().filter(|l| !l.is_empty()).count(),
            3,
            "{shown}"
        );
    }
}

#[test]
fn on_a_narrow_terminal_the_table_is_cut_to_fit_never_wrapped() {
    let sb = wide_store();
    let text = on_terminal(&sb, 60, "contexts");
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "one line per row, no wrapping:\n{text}");
    for line in &lines {
        assert!(
            display_width(line) <= 60,
            "{line:?} is wider than 60:\n{text}"
        );
    }
    assert!(text.contains('…'), "{text}");
    assert!(
        lines[0].starts_with("CURRENT") && lines[0].contains("ORGANIZATION"),
        "{text}"
    );
    assert!(
        text.contains("needs login") || text.contains("signed in"),
        "{text}"
    );
    // A wide terminal shows everything.
    let wide = on_terminal(&sb, 250, "contexts");
    assert!(!wide.contains('…'), "{wide}");
    assert!(
        wide.contains("subsidiary.example-corporation.com"),
        "{wide}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Logout of the current context
// ---------------------------------------------------------------------------------------------

#[test]
fn logout_of_the_current_context_says_none_is_current_and_how_to_pick_one() {
    let sb = Sandbox::new();
    // Sessions the IdP already ended: logout needs no network.
    let ended = |key: &str, name: &str| {
        context_toml(key, name).replace(
            "storage = \"file\"\n",
            "storage = \"file\"\nneeds-login = true\n",
        )
    };
    let mut text = String::from("current = \"org_a\"\nprevious = \"org_b\"\n\n");
    text.push_str(&ended("org_a", "alpha"));
    text.push_str(&ended("org_b", "beta"));
    text.push_str(&ended("org_c", "gamma"));
    sb.write_config(&text);

    // Not the current one: nothing to say about it.
    let run = sb.run(&["logout", "gamma"]);
    run.ok();
    assert!(!run.stderr.contains("current"), "{}", run.stderr);

    let run = sb.run(&["logout"]);
    run.ok();
    assert!(
        run.stderr.contains("No context is current now")
            && run.stderr.contains("`mycli switch beta`"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
    sb.run(&["current"]).code(1);
    // The printed command works as printed.
    sb.run(&["switch", "beta"]).ok();
    let run = sb.run(&["logout"]);
    run.ok();
    assert!(
        run.stderr.contains("No context is left") && run.stderr.contains("mycli login"),
        "{}",
        run.stderr
    );

    // `--all` says it once, at the end, when the current one was among them.
    sb.write_config(&text);
    sb.run(&["switch", "alpha"]).ok();
    let run = sb.run(&["logout", "--all"]);
    run.ok();
    assert_eq!(
        run.stderr.matches("No context is left").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("current now"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// 5. Completion in real shells
// ---------------------------------------------------------------------------------------------

/// Types `keys` into an interactive `shell` on a terminal (script(1)), with `mycli` on PATH
/// and the sandbox's store; returns once the shell exited.
fn type_into_shell(sb: &Sandbox, shell: &str, keys: &[u8]) -> String {
    use std::io::Write;
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = sb
        .terminal_cmd(shell)
        .env("PATH", path)
        .env("ZDOTDIR", sb.tmp.path())
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(keys).unwrap();
    stdin.flush().unwrap();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    });
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    drop(watchdog);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn shell_store() -> Sandbox {
    let sb = Sandbox::new();
    let mut text = String::from("current = \"org_globex\"\n\n");
    text.push_str(&context_toml("org_acme", "acme"));
    text.push_str(&context_toml("org_globex", "globex"));
    text.push_str(&context_toml("org_odd", "it's;x"));
    sb.write_config(&text);
    sb
}

fn current_name(sb: &Sandbox) -> String {
    sb.run(&["current"]).stdout.trim().to_string()
}

#[test]
fn zsh_completion_installed_in_fpath_works_on_the_first_tab() {
    if std::process::Command::new("zsh")
        .arg("-c")
        .arg("true")
        .status()
        .is_err()
    {
        panic!("zsh is needed for this test: run scripts/setup (it installs zsh)");
    }
    let sb = shell_store();
    let fpath = sb.tmp.path().join("zfunc");
    std::fs::create_dir_all(&fpath).unwrap();
    // The README way: the script as `_mycli` in a directory of $fpath, then compinit.
    let script = sb.run(&["completions", "zsh"]);
    script.ok();
    std::fs::write(fpath.join("_mycli"), &script.stdout).unwrap();
    std::fs::write(
        sb.tmp.path().join(".zshrc"),
        format!(
            "fpath=({} $fpath)\nautoload -Uz compinit\ncompinit -u\nPS1='> '\n",
            fpath.display()
        ),
    )
    .unwrap();
    // One TAB in a fresh shell completes `ac` to `acme`; Enter then runs the switch.
    let screen = type_into_shell(&sb, "zsh -i", b"mycli switch ac\t\nexit\n");
    assert_eq!(
        current_name(&sb),
        "acme",
        "the first TAB did not complete:\n{screen}"
    );
}

#[test]
fn bash_completion_quotes_names_with_metacharacters() {
    let sb = shell_store();
    let script = sb.tmp.path().join("mycli.bash");
    std::fs::write(&script, sb.run(&["completions", "bash"]).stdout).unwrap();
    std::fs::write(
        sb.tmp.path().join(".bashrc"),
        format!("source '{}'\nPS1='> '\n", script.display()),
    )
    .unwrap();
    let screen = type_into_shell(
        &sb,
        &format!(
            "bash --rcfile '{}' -i",
            sb.tmp.path().join(".bashrc").display()
        ),
        b"mycli switch it\t\nexit\n",
    );
    assert_eq!(current_name(&sb), "it's;x", "{screen}");
}

/// What `_MYCLI_COMPLETE=SHELL mycli -- mycli WORDS` offers (the last word is being completed).
fn candidates(sb: &Sandbox, shell: &str, words: &[&str]) -> Vec<String> {
    let mut cmd = sb.cmd();
    cmd.env("_MYCLI_COMPLETE", shell)
        .args(["--", "mycli"])
        .args(words);
    if shell == "bash" {
        cmd.env("_CLAP_COMPLETE_INDEX", words.len().to_string())
            .env("_CLAP_IFS", "\n");
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

#[test]
fn switch_tab_offers_context_names_and_flags_only_after_a_dash() {
    let sb = shell_store();
    for shell in ["bash", "fish"] {
        let values = candidates(&sb, shell, &["switch", ""]);
        assert!(values.iter().any(|v| v == "acme"), "{shell}: {values:?}");
        assert!(
            values.iter().all(|v| !v.starts_with('-')),
            "{shell}: flags offered for a name: {values:?}"
        );
        let values = candidates(&sb, shell, &["switch", "--"]);
        assert!(
            values.iter().any(|v| v == "--context"),
            "{shell}: {values:?}"
        );
        assert!(!values.iter().any(|v| v == "acme"), "{shell}: {values:?}");
        // Value completion of a flag still works.
        let values = candidates(&sb, shell, &["token", "--context", ""]);
        assert!(values.iter().any(|v| v == "globex"), "{shell}: {values:?}");
    }
    // bash inserts candidates literally: metacharacters come escaped.
    let values = candidates(&sb, "bash", &["switch", "it"]);
    assert_eq!(values, ["it\\'s\\;x"]);
    let values = candidates(&sb, "fish", &["switch", "it"]);
    assert_eq!(values, ["it's;x"]);
}

// ---------------------------------------------------------------------------------------------
// 7. Help that teaches
// ---------------------------------------------------------------------------------------------

/// Every command but `help`, as the CLI defines them (a new one is covered at once).
fn commands() -> Vec<String> {
    mycli::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|name| name != "help")
        .collect()
}

#[test]
fn every_command_help_has_examples_and_global_flags_under_their_own_heading() {
    let sb = Sandbox::new();
    let commands = commands();
    assert!(commands.len() >= 14, "{commands:?}");
    for cmd in &commands {
        let cmd = cmd.as_str();
        let run = sb.run(&[cmd, "--help"]);
        run.ok();
        let help = &run.stdout;
        assert!(help.contains("\nExamples:\n"), "{cmd}: {help}");
        let (own, global) = help
            .split_once("\nGlobal options:\n")
            .unwrap_or_else(|| panic!("{cmd}: no Global options heading:\n{help}"));
        for flag in [
            "--context <NAME>",
            "--config-dir <DIR>",
            "--output <FORMAT>",
            "--verbose",
            "--quiet",
        ] {
            assert!(
                !own.contains(flag),
                "{cmd}: {flag} among the command's own options"
            );
            assert!(
                global.contains(flag),
                "{cmd}: {flag} missing under Global options"
            );
        }
        // `mycli help CMD` prints the same help.
        let via_help = sb.run(&["help", cmd]);
        via_help.ok();
        assert_eq!(via_help.stdout, run.stdout, "{cmd}");
    }
    let top = sb.run(&["--help"]);
    assert!(top.stdout.contains("Examples:") && top.stdout.contains("mycli help environment"));
}

#[test]
fn output_formats_are_refused_where_they_mean_nothing() {
    let sb = Sandbox::new();
    for args in [
        &["login", "-o", "json"][..],
        &["current", "-o", "json"],
        &["switch", "x", "-o", "name"],
        &["rename", "a", "b", "-o", "json"],
        &["logout", "-o", "table"],
        &["refresh", "-o", "json"],
        &["completions", "bash", "-o", "json"],
        &["token", "-o", "name"],
        &["prompt", "-o", "json"],
    ] {
        let run = sb.run(args);
        run.code(2);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(
            run.stderr.starts_with("error: `mycli ") && run.stderr.contains("hint: "),
            "{args:?}: {}",
            run.stderr
        );
    }
    sb.run(&["contexts", "-o", "json"]).ok();
    sb.run(&["contexts", "-o", "name"]).ok();
}

#[test]
fn help_environment_lists_every_variable() {
    let sb = Sandbox::new();
    let run = sb.run(&["help", "environment"]);
    run.ok();
    let env_rs = std::fs::read_to_string(repo().join("src/env.rs")).unwrap();
    let mut vars: Vec<&str> = env_rs
        .split('"')
        .filter(|w| w.starts_with("MYCLI_") || *w == "WORKOS_CLIENT_ID")
        .collect();
    vars.extend(["BROWSER", "NO_COLOR"]);
    for var in vars {
        assert!(
            run.stdout.contains(var),
            "help environment lacks {var}:\n{}",
            run.stdout
        );
    }
    let run = sb.run(&["help", "nothing-like-this"]);
    run.code(2);
}

#[test]
fn completions_help_says_where_each_shell_script_goes() {
    let sb = Sandbox::new();
    let run = sb.run(&["completions", "--help"]);
    run.ok();
    for place in [
        "~/.bashrc",
        "$fpath",
        "compinit",
        "~/.config/fish/completions/mycli.fish",
        "$PROFILE",
        "rc.elv",
    ] {
        assert!(run.stdout.contains(place), "lacks {place}:\n{}", run.stdout);
    }
}

// ---------------------------------------------------------------------------------------------
// Should-fix: browser, wording, colour, environment
// ---------------------------------------------------------------------------------------------

#[test]
fn a_browser_that_cannot_start_is_reported_at_once_and_the_login_keeps_waiting() {
    let idp = Idp::start();
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    sb.set("BROWSER", "/nonexistent/browser")
        .set("MYCLI_LOGIN_TIMEOUT", "60");
    let mut bg = sb.spawn(&["login", "--org", "org_acme"]);
    let stderr = bg.wait_stderr("warning: could not open a browser");
    assert!(stderr.contains("/nonexistent/browser"), "{stderr}");
    assert!(stderr.contains("authorize?"), "the URL is shown: {stderr}");
    assert!(bg.running(), "the login keeps waiting for the sign-in");
    bg.sigint();
    let (run, _) = bg.finish(std::time::Duration::from_secs(10));
    run.code(130);
}

#[test]
fn browser_falls_through_its_list_and_a_quoted_placeholder_gets_the_url() {
    let idp = Idp::start();
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    // The form Python's webbrowser and many dotfiles use: '%s' in quotes, after one entry
    // that is not installed here.
    let curl = sb.curl_browser();
    let browsers = format!("/nonexistent/browser:{} '%s'", curl.display());
    sb.set("BROWSER", &browsers)
        .set("MYCLI_LOGIN_TIMEOUT", "20");
    let run = sb.run(&["login", "--org", "org_acme"]);
    run.ok();
    assert!(run.stderr.contains("Signed in"), "{run:#?}");
    assert_eq!(idp.stats()["grants"]["authorization_code"], 1);

    // Double quotes, and a bare %s, hand over the URL just the same.
    for form in ["\"%s\"", "%s"] {
        sb.run(&["logout"]).ok();
        sb.set("BROWSER", &format!("{} {form}", curl.display()));
        sb.run(&["login", "--org", "org_acme"]).ok();
    }
    assert_eq!(idp.stats()["grants"]["authorization_code"], 3);
}

#[test]
fn a_name_that_does_not_resolve_says_so() {
    let sb = Sandbox::new();
    let run = sb.run(&[
        "login",
        "--provider",
        "oidc",
        "--issuer",
        "https://nowhere.invalid",
        "--client-id",
        "x",
        "--org",
        "acme",
        "--device",
    ]);
    run.code(1);
    assert!(
        run.stderr.contains("could not resolve nowhere.invalid"),
        "{}",
        run.stderr
    );
}

/// stderr of `mycli ARGS` on a terminal, with `TERM` set to `term`.
fn stderr_on_terminal(sb: &Sandbox, term: &str, args: &str) -> String {
    let out = sb
        .terminal_cmd(&format!("'{BIN}' {args}"))
        .env("TERM", term)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_dumb_terminal_gets_no_colour() {
    let sb = Sandbox::new();
    sb.write_config(&context_toml("org_acme", "acme"));
    let coloured = stderr_on_terminal(&sb, "xterm", "switch nope");
    assert!(coloured.contains("\u{1b}["), "{coloured:?}");
    let plain = stderr_on_terminal(&sb, "dumb", "switch nope");
    assert!(plain.contains("error:"), "{plain:?}");
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
}

#[test]
fn environment_values_are_checked_by_every_command() {
    let mut sb = Sandbox::new();
    sb.write_config(&context_toml("org_acme", "acme"));
    for (var, value) in [
        ("MYCLI_HTTP_TIMEOUT", "abc"),
        ("MYCLI_LOCK_TIMEOUT", "-1"),
        ("MYCLI_CREDENTIAL_STORE", "vault"),
        ("MYCLI_PROVIDER", "okta"),
    ] {
        sb.set(var, value);
        for args in [
            &["refresh", "acme"][..],
            &["token"],
            &["contexts"],
            &["switch", "acme"],
        ] {
            let run = sb.run(args);
            run.code(2);
            assert!(
                run.stderr.contains(var) && run.stderr.contains(value),
                "{var}={value} {args:?}: {}",
                run.stderr
            );
        }
        sb.unset(var);
    }
    sb.set("MYCLI_CREDENTIAL_STORE", "file");
    sb.run(&["switch", "acme"]).ok();
}

#[test]
fn explicit_file_storage_is_a_note_and_a_rename_at_relogin_is_said() {
    let idp = Idp::start();
    let mut sb = browser_sandbox(&idp);
    sb.use_idp(&idp);
    let run = sb.run(&["login", "--org", "org_acme"]);
    run.ok();
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("MYCLI_CREDENTIAL_STORE=file"),
        "{}",
        run.stderr
    );
    let run = sb.run(&["login", "--org", "org_acme", "--name", "acme"]);
    run.ok();
    assert!(
        run.stderr.contains("renamed from \"org_acme\""),
        "{}",
        run.stderr
    );
}

#[test]
fn ctrl_c_during_login_says_nothing_was_stored() {
    let idp = Idp::start();
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let mut bg = sb.spawn(&["login", "--org", "org_acme", "--device"]);
    bg.wait_stderr("Waiting for approval");
    bg.sigint();
    let (run, _) = bg.finish(std::time::Duration::from_secs(10));
    run.code(130);
    assert!(
        run.stderr.ends_with("\nCancelled; nothing was stored.\n"),
        "{:?}",
        run.stderr
    );
    assert!(!sb.path("config.toml").exists());
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_d_at_the_organization_picker_is_a_cancel() {
    use std::io::Write;
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "org_selection_public": true}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let mut child = sb
        .terminal_cmd(&format!("'{BIN}' login --device"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux runs the binary on a terminal");
    let mut stdin = child.stdin.take().unwrap();
    idp.approve_device(json!({}));
    // Ctrl-D on an empty line: the terminal queues an end of input for the picker's read,
    // whenever that read comes.
    stdin.write_all(b"\x04").unwrap();
    stdin.flush().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Sign in to which one?"), "{text}");
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(text.contains("Cancelled; nothing was stored."), "{text}");
    assert!(!text.contains("error:"), "{text}");
    assert!(!sb.path("config.toml").exists());
}

#[cfg(target_os = "linux")]
#[test]
fn the_device_flow_shows_the_complete_url_and_a_qr_code_on_a_terminal() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let on_terminal = |extra: &str| {
        let child = sb
            .terminal_cmd(&format!("'{BIN}' login --org org_acme --device {extra}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        idp.approve_device(json!({}));
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = on_terminal("");
    assert!(
        text.contains("Or open this URL, which carries the code: ") && text.contains("user_code="),
        "{text}"
    );
    assert!(
        text.contains('▀') || text.contains('▄'),
        "no QR code:\n{text}"
    );
    let text = on_terminal("--force --no-qr");
    assert!(text.contains("user_code="), "{text}");
    assert!(!text.contains('▀') && !text.contains('▄'), "{text}");
    // Piped: the URL, no QR code.
    let bg = sb.spawn(&["login", "--org", "org_acme", "--device", "--force"]);
    idp.approve_device(json!({}));
    let (run, _) = bg.finish(std::time::Duration::from_secs(30));
    run.ok();
    assert!(run.stderr.contains("user_code="), "{}", run.stderr);
    assert!(
        !run.stderr.contains('▀') && !run.stderr.contains('▄'),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// 11. WorkOS fidelity
// ---------------------------------------------------------------------------------------------

#[test]
fn a_user_of_many_organizations_gets_one_readable_line_off_a_terminal() {
    let orgs: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("org_{i:02}"), "name": format!("Organization {i}")}))
        .collect();
    let memberships: Vec<Value> = (0..40)
        .map(|i| json!({"organization_id": format!("org_{i:02}")}))
        .collect();
    let users = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        users.path(),
        json!({"organizations": orgs, "users": [{"id": "user_alice",
            "email": "alice@example.com", "memberships": memberships}]})
        .to_string(),
    )
    .unwrap();
    let idp = Idp::start_with_users(users.path());
    idp.scenario(json!({"device_interval": 1, "device_ignores_org": true}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let run = device_login_with_selection(&idp, &sb, &[]);
    run.code(1);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(error.contains("org_00 (Organization 0)"), "{}", run.stderr);
    assert!(error.contains("(and 30 more)"), "{}", run.stderr);
    assert!(!error.contains("org_39"), "{}", run.stderr);
    assert!(
        run.stderr.contains("mycli login --org org_00"),
        "{}",
        run.stderr
    );
    assert!(!sb.path("config.toml").exists());
}

#[test]
fn an_organization_the_user_is_not_a_member_of_is_said_plainly() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "device_ignores_org": true,
        "org_selection_public": true}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let run = device_login_with_selection(&idp, &sb, &["--org", "org_umbrella"]);
    run.code(1);
    assert!(
        run.stderr.contains("you are not a member of org_umbrella"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("sign in with the browser"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("org_acme") && run.stderr.contains("org_globex"));
    assert!(!sb.path("config.toml").exists());
}

#[test]
fn an_impersonated_session_is_shown_and_status_json_carries_the_rights() {
    let idp = Idp::start();
    let mut sb = browser_sandbox(&idp);
    sb.use_idp(&idp);
    sb.run(&["login", "--org", "org_globex", "--name", "globex"])
        .ok();
    idp.scenario(
        json!({"impersonator": {"email": "admin@example.com", "reason": "Support ticket 42"}}),
    );
    let run = sb.run(&["login", "--org", "org_acme", "--name", "acme"]);
    run.ok();
    assert!(
        run.stderr
            .contains("impersonated by admin@example.com (reason: Support ticket 42)"),
        "{}",
        run.stderr
    );
    let status = sb.run(&["status", "acme"]);
    status.ok();
    assert!(
        status
            .stdout
            .contains("Impersonated:  by admin@example.com (reason: Support ticket 42)"),
        "{}",
        status.stdout
    );
    let json: Value =
        serde_json::from_str(&sb.run(&["status", "acme", "-o", "json"]).stdout).unwrap();
    assert_eq!(
        json["impersonator"],
        json!({"email": "admin@example.com", "reason": "Support ticket 42"})
    );
    assert_eq!(json["authentication_method"], "SSO");
    assert_eq!(json["role"], "admin");
    assert_eq!(
        json["permissions"],
        json!(["widgets:read", "widgets:write"])
    );
    // The listing carries the impersonation too; a normal session has none.
    let contexts = sb.contexts_json();
    assert_eq!(
        context_of(&contexts, "org_acme")["impersonator"]["email"],
        "admin@example.com"
    );
    assert_eq!(
        context_of(&contexts, "org_globex")["impersonator"],
        Value::Null
    );
    let json: Value =
        serde_json::from_str(&sb.run(&["status", "globex", "-o", "json"]).stdout).unwrap();
    assert_eq!(json["role"], "member");
    assert_eq!(json["impersonator"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// 10. status --all
// ---------------------------------------------------------------------------------------------

fn make_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn status_all_lists_every_context_with_the_selection_rule() {
    let mut sb = Sandbox::new();
    let mut text = String::from("current = \"org_a\"\n\n");
    text.push_str(&context_toml("org_a", "alpha").replace(
        "storage = \"file\"\n",
        "storage = \"file\"\naccess-token-expires-at = \"2099-01-01T00:00:00Z\"\n",
    ));
    text.push_str(&context_toml("org_b", "beta").replace(
        "storage = \"file\"\n",
        "storage = \"file\"\nneeds-login = true\n",
    ));
    sb.write_config(&text);
    // alpha's refresh token is stored; beta was ended by the IdP.
    std::fs::write(
        sb.path("credentials.toml"),
        "[\"org_a\"]\nrefresh-token = \"rt_alpha\"\n",
    )
    .unwrap();
    make_private(&sb.path("credentials.toml"));
    let run = sb.run(&["status", "--all"]);
    run.code(4);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].starts_with("NAME") && lines[0].contains("SELECTED BY"));
    let alpha = lines.iter().find(|l| l.starts_with("alpha")).unwrap();
    assert!(
        alpha.contains("signed in") && alpha.contains("current context"),
        "{alpha}"
    );
    let beta = lines.iter().find(|l| l.starts_with("beta")).unwrap();
    assert!(beta.contains("needs login"), "{beta}");
    assert!(run.stderr.contains("beta"), "{}", run.stderr);

    // The rule that selects here: the environment wins over the current pointer.
    sb.set("MYCLI_CONTEXT", "beta");
    let run = sb.run(&["status", "--all", "-o", "json"]);
    run.code(4);
    let items: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(items.len(), 2);
    let beta = items.iter().find(|c| c["name"] == "beta").unwrap();
    assert_eq!(beta["selected_by"]["rule"], "env");
    assert_eq!(beta["needs_login"], true);
    let alpha = items.iter().find(|c| c["name"] == "alpha").unwrap();
    assert_eq!(alpha["selected"], false);
    sb.unset("MYCLI_CONTEXT");

    // All signed in: exit 0.
    sb.write_config(&text.replace("needs-login = true\n", ""));
    sb.run(&["logout", "beta"]).ok();
    sb.run(&["status", "--all"]).ok();
}

#[test]
fn a_slow_idp_shows_progress_on_a_terminal_only() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", silent.local_addr().unwrap());
    let mut sb = Sandbox::new();
    sb.set("MYCLI_HTTP_TIMEOUT", "4");
    let args = format!("login --provider oidc --issuer {issuer} --client-id x --org acme --device");
    let host = issuer.trim_start_matches("http://");
    let text = stderr_on_terminal(&sb, "xterm", &args);
    assert!(text.contains(&format!("Contacting {host}…")), "{text}");
    assert!(text.contains("did not answer"), "{text}");
    // Piped: no progress line, only the error.
    let run = sb.run(&args.split(' ').collect::<Vec<_>>());
    run.code(1);
    assert!(!run.stderr.contains("Contacting"), "{}", run.stderr);
    drop(silent);
}
