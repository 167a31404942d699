#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Working in several organizations (spec §8) through the real binary: which context a command
//! uses (`--context` > `MYCLI_CONTEXT` > the nearest `.mycli.toml` > `current`), hostile pins,
//! `mycli pin`, `exec` (exit codes, signals, `--each`), `shell` and the `switch` picker in a
//! pty, `prompt`, and `token -o json|exec-credential` read by a real kubectl.
//!
//! Most tests write the store by hand (config.toml and a valid cached access token per
//! context), the way the README documents it; the ones that need a refresh or a login run
//! against the test IdP.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

const ORGS: [(&str, &str); 4] = [
    ("org_cur", "cur"),
    ("org_pin", "pinned"),
    ("org_env", "envctx"),
    ("org_flag", "flagctx"),
];

/// A store holding `contexts` (key, name), each with a valid cached token `tok-NAME`, and
/// `current` pointing at the first; plus a work tree `work/` beside it.
fn store(contexts: &[(&str, &str)]) -> Sandbox {
    let sb = Sandbox::new();
    let mut text = String::new();
    for (key, name) in contexts {
        text.push_str(&context_toml(key, name));
    }
    sb.write_config(&text);
    private(&sb.config_dir);
    std::fs::write(
        sb.path("current.toml"),
        format!("current = \"{}\"\n", contexts[0].0),
    )
    .unwrap();
    for (key, name) in contexts {
        cache_token(&sb, key, &format!("tok-{name}"), now() + 3600);
    }
    std::fs::create_dir_all(work(&sb)).unwrap();
    sb
}

fn private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn cache_token(sb: &Sandbox, key: &str, token: &str, expires_at: i64) {
    use std::os::unix::fs::PermissionsExt;
    let dir = sb.path("tokens");
    std::fs::create_dir_all(&dir).unwrap();
    private(&dir);
    let path = sb.token_file(key);
    std::fs::write(
        &path,
        json!({"key": key, "expires_at": expires_at, "access_token": token}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn work(sb: &Sandbox) -> PathBuf {
    sb.tmp.path().join("work")
}

/// `mycli ARGS` in `dir` with extra environment variables.
fn run_in(sb: &Sandbox, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = sb.cmd();
    cmd.current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_no_panic(&args.join(" "), &run.stderr);
    run
}

fn pin(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(".mycli.toml"), text).unwrap();
}

fn current_pointer(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.path("current.toml")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Precedence
// ---------------------------------------------------------------------------------------------

#[test]
fn precedence_flag_then_env_then_nearest_pin_then_current_in_every_combination() {
    let sb = store(&ORGS);
    let dir = work(&sb).join("repo/src");
    std::fs::create_dir_all(&dir).unwrap();
    for pin_kind in ["none", "organization", "context"] {
        let _ = std::fs::remove_file(work(&sb).join("repo/.mycli.toml"));
        match pin_kind {
            "organization" => pin(&work(&sb).join("repo"), "organization = \"org_pin\"\n"),
            "context" => pin(&work(&sb).join("repo"), "context = \"pinned\"\n"),
            _ => {}
        }
        for env_set in [false, true] {
            for flag_set in [false, true] {
                let mut env = vec![];
                if env_set {
                    env.push(("MYCLI_CONTEXT", "envctx"));
                }
                let flag: &[&str] = if flag_set {
                    &["--context", "flagctx"]
                } else {
                    &[]
                };
                let (want, rule) = if flag_set {
                    ("flagctx", "flag")
                } else if env_set {
                    ("envctx", "env")
                } else if pin_kind != "none" {
                    ("pinned", "pin")
                } else {
                    ("cur", "current")
                };
                let what = format!("pin {pin_kind}, env {env_set}, flag {flag_set}");
                let args = |cmd: &[&'static str]| -> Vec<&'static str> { [flag, cmd].concat() };

                let token = run_in(&sb, &dir, &env, &args(&["token"]));
                assert_eq!(printed_token(&token), format!("tok-{want}"), "{what}");
                assert_eq!(token.stderr, "", "token writes nothing on stderr ({what})");

                let current = run_in(&sb, &dir, &env, &args(&["current"]));
                assert_eq!(current.ok().stdout, format!("{want}\n"), "{what}");

                let prompt = run_in(&sb, &dir, &env, &args(&["prompt"]));
                assert_eq!(prompt.ok().stdout, format!("{want}\n"), "{what}");

                let status = run_in(&sb, &dir, &env, &args(&["status", "-o", "json"]));
                let status: Value = serde_json::from_str(&status.ok().stdout).unwrap();
                assert_eq!(status["name"], want, "{what}");
                assert_eq!(status["selected_by"]["rule"], rule, "{what}");
                assert_eq!(status["current"], want == "cur", "{what}");
                if rule == "pin" {
                    let path = work(&sb).join("repo/.mycli.toml");
                    assert_eq!(status["selected_by"]["path"], path.display().to_string());
                }

                let list = run_in(&sb, &dir, &env, &args(&["contexts", "-o", "json"]));
                let selected: Vec<String> = contexts_of(&list)
                    .iter()
                    .filter(|c| c["selected"] == true)
                    .map(|c| c["name"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(selected, vec![want.to_string()], "{what}");
                assert_eq!(
                    status,
                    context_named(contexts_of(&list), want),
                    "status -o json is the contexts -o json object ({what})"
                );
                // `status NAME` of another context shows it, unselected.
                let other = if want == "cur" { "pinned" } else { "cur" };
                let shown = run_in(&sb, &dir, &env, &args(&["status", other, "-o", "json"]));
                let shown: Value = serde_json::from_str(&shown.ok().stdout).unwrap();
                assert_eq!(
                    (&shown["selected"], &shown["selected_by"]),
                    (&json!(false), &Value::Null)
                );
                if want != "cur" {
                    assert!(
                        list.stderr.contains(&format!("Commands here use {want:?}")),
                        "contexts says the effective one differs from current ({what}): {}",
                        list.stderr
                    );
                }
            }
        }
    }
    // None of this touched the current pointer.
    assert_eq!(current_pointer(&sb), "current = \"org_cur\"\n");
}

#[test]
fn status_and_contexts_name_the_rule_that_chose() {
    let sb = store(&ORGS);
    let repo = work(&sb).join("repo");
    pin(&repo, "organization = \"org_pin\"\n");
    let status = run_in(&sb, &repo, &[], &["status"]);
    let pin_path = repo.join(".mycli.toml").display().to_string();
    assert!(
        status
            .ok()
            .stdout
            .contains(&format!("Selected by:   {pin_path}")),
        "{}",
        status.stdout
    );
    let status = run_in(&sb, &repo, &[("MYCLI_CONTEXT", "envctx")], &["status"]);
    assert!(status.ok().stdout.contains("Selected by:   MYCLI_CONTEXT"));
    let status = run_in(&sb, &work(&sb), &[], &["status"]);
    assert!(
        status
            .ok()
            .stdout
            .contains("Selected by:   the current context")
    );
    let table = run_in(&sb, &repo, &[], &["contexts"]);
    let marked: Vec<&str> = table
        .ok()
        .stdout
        .lines()
        .filter(|l| l.starts_with('*'))
        .collect();
    assert_eq!(marked.len(), 1, "{}", table.stdout);
    assert!(marked[0].contains("pinned"), "{}", table.stdout);
    assert!(table.stderr.contains(&pin_path), "{}", table.stderr);
    let current = run_in(&sb, &repo, &[], &["current"]);
    assert!(
        current.ok().stderr.contains(&pin_path),
        "{}",
        current.stderr
    );
}

#[test]
fn a_pin_in_a_parent_directory_applies_below_it_and_ceiling_dirs_stop_the_search() {
    let sb = store(&ORGS);
    let repo = work(&sb).join("repo");
    let deep = repo.join("a/b/c/d/e");
    std::fs::create_dir_all(&deep).unwrap();
    pin(&repo, "context = \"pinned\"\n");
    assert_eq!(
        printed_token(&run_in(&sb, &deep, &[], &["token"])),
        "tok-pinned"
    );
    // The nearest pin wins.
    pin(&repo.join("a/b"), "organization = \"org_env\"\n");
    assert_eq!(
        printed_token(&run_in(&sb, &deep, &[], &["token"])),
        "tok-envctx"
    );
    std::fs::remove_file(repo.join("a/b/.mycli.toml")).unwrap();
    // A ceiling between the working directory and the pin hides it (git's rule: the ceiling
    // itself is not looked at).
    let ceiling = repo.join("a").display().to_string();
    let hidden = run_in(
        &sb,
        &deep,
        &[("MYCLI_CEILING_DIRS", &format!("/nonexistent:{ceiling}"))],
        &["token"],
    );
    assert_eq!(printed_token(&hidden), "tok-cur");
    let at_repo = run_in(
        &sb,
        &deep,
        &[("MYCLI_CEILING_DIRS", &repo.display().to_string())],
        &["token"],
    );
    assert_eq!(printed_token(&at_repo), "tok-cur");
    // A ceiling written through a symbolic link is the same directory (git resolves them too).
    let link = work(&sb).join("repo-link");
    std::os::unix::fs::symlink(&repo, &link).unwrap();
    let through_link = run_in(
        &sb,
        &deep,
        &[("MYCLI_CEILING_DIRS", &link.join("a").display().to_string())],
        &["token"],
    );
    assert_eq!(printed_token(&through_link), "tok-cur");
    // A ceiling above the pin does not.
    let above = run_in(
        &sb,
        &deep,
        &[("MYCLI_CEILING_DIRS", &work(&sb).display().to_string())],
        &["token"],
    );
    assert_eq!(printed_token(&above), "tok-pinned");
}

#[test]
fn no_directory_walk_when_the_flag_or_the_environment_decides() {
    let sb = store(&ORGS);
    let dir = work(&sb).join("broken");
    // A pin that would be refused if it were read.
    pin(&dir, "issuer = \"https://evil.example\"\n");
    let walked = run_in(&sb, &dir, &[], &["token"]);
    walked.code(1);
    for (env, flag) in [
        (vec![("MYCLI_CONTEXT", "envctx")], vec![]),
        (vec![], vec!["--context", "flagctx"]),
    ] {
        let args = [flag.as_slice(), &["token"]].concat();
        let run = run_in(&sb, &dir, &env, &args);
        assert!(printed_token(&run).starts_with("tok-"), "{run:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken pins
// ---------------------------------------------------------------------------------------------

#[test]
fn a_pin_can_never_choose_the_provider_and_unknown_keys_are_refused_with_their_line() {
    let sb = store(&ORGS);
    let dir = work(&sb).join("cloned");
    for (text, line, what) in [
        (
            "organization = \"org_pin\"\nissuer = \"https://evil.example\"\n",
            2,
            "`issuer` is not allowed",
        ),
        (
            "# hi\n\ncontext = \"pinned\"\nclient-id = \"client_evil\"\n",
            4,
            "`client-id` is not allowed",
        ),
        (
            "organization = \"org_pin\"\n[provider]\nkind = \"oidc\"\n",
            2,
            "`provider` is not allowed",
        ),
        (
            "context = \"pinned\"\ncolour = \"red\"\n",
            2,
            "unknown key `colour`",
        ),
        ("organization = \n", 1, ""),
        (
            "organization = \"org_pin\"\ncontext = \"cur\"\n",
            2,
            "a pin holds either `organization` or `context`, not both",
        ),
    ] {
        pin(&dir, text);
        let before = store_files(&sb.config_dir);
        for cmd in [
            &["token"][..],
            &["status"],
            &["login", "--device"],
            &["current"],
        ] {
            let run = run_in(&sb, &dir, &[], cmd);
            run.code(1);
            let first = run.stderr.lines().next().unwrap_or_default();
            let path = dir.join(".mycli.toml").display().to_string();
            assert!(
                first.starts_with(&format!("error: {path}, line {line}: {what}")),
                "{cmd:?} with {text:?}: {}",
                run.stderr
            );
            assert!(run.stderr.contains("hint: "), "{}", run.stderr);
            assert_eq!(run.stdout, "");
        }
        assert_eq!(
            store_files(&sb.config_dir),
            before,
            "the store was not touched"
        );
    }
}

#[test]
fn a_pinned_organization_without_a_session_needs_a_login_and_says_which() {
    let sb = store(&ORGS);
    let dir = work(&sb).join("other-team");
    pin(&dir, "organization = \"org_01HNOTMINE\"\n");
    for cmd in [
        &["token"][..],
        &["status"],
        &["token", "-o", "json"],
        &["exec", "--", "true"],
    ] {
        let run = run_in(&sb, &dir, &[], cmd);
        run.code(4);
        assert!(
            run.stderr
                .contains("hint: run `mycli login --org org_01HNOTMINE`"),
            "{cmd:?}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
    }
    // A pin can name an organization only by its id, never by a context's name.
    pin(&dir, "organization = \"pinned\"\n");
    run_in(&sb, &dir, &[], &["token"]).code(4);
    // A personal pin naming no context of yours is an unknown context.
    pin(&dir, "context = \"nobody\"\n");
    let run = run_in(&sb, &dir, &[], &["token"]);
    run.code(1);
    assert!(
        run.stderr.contains("no context named \"nobody\""),
        "{}",
        run.stderr
    );
    // The prompt stays quiet whatever the pin says.
    for text in [
        "context = \"nobody\"\n",
        "issuer = \"x\"\n",
        "organization = \"org_x\"\n",
    ] {
        pin(&dir, text);
        let run = run_in(&sb, &dir, &[], &["prompt"]);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (Some(0), "", "")
        );
    }
}

#[test]
fn a_pin_is_inert_for_a_name_written_like_a_path() {
    let sb = store(&ORGS);
    let dir = work(&sb).join("evil");
    // The organization becomes a file name of the token cache: it must not reach outside.
    cache_token(&sb, "org_cur", "tok-cur", now() + 3600);
    std::fs::write(
        sb.config_dir.join("evil.json"),
        json!({"key": "../evil", "expires_at": now() + 3600, "access_token": "stolen"}).to_string(),
    )
    .unwrap();
    pin(&dir, "organization = \"../evil\"\n");
    let run = run_in(&sb, &dir, &[], &["token"]);
    run.code(4);
    assert!(!run.stdout.contains("stolen"));
}

// ---------------------------------------------------------------------------------------------
// mycli pin
// ---------------------------------------------------------------------------------------------

#[test]
fn pin_writes_shows_and_clears_the_file_of_the_working_directory() {
    let sb = store(&ORGS);
    let repo = work(&sb).join("repo");
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    let file = repo.join(".mycli.toml");

    let run = run_in(&sb, &repo, &[], &["pin", "pinned"]);
    run.ok();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("organization = \"org_pin\"\n"), "{text}");
    assert_eq!(mode(&file), 0o644);
    assert_eq!(
        printed_token(&run_in(&sb, &repo.join("sub"), &[], &["token"])),
        "tok-pinned"
    );

    let shown = run_in(&sb, &repo.join("sub"), &[], &["pin"]);
    assert_eq!(shown.ok().stdout, format!("org_pin\t{}\n", file.display()));
    assert!(shown.stderr.contains("\"pinned\""), "{}", shown.stderr);

    run_in(&sb, &repo, &[], &["pin", "org_env", "--personal"]).ok();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("context = \"envctx\"\n"), "{text}");

    // Inside a shell pinned by MYCLI_CONTEXT, the pin is written but does not apply: say so.
    let run = run_in(&sb, &repo, &[("MYCLI_CONTEXT", "cur")], &["pin", "pinned"]);
    assert!(
        run.ok().stderr.contains("MYCLI_CONTEXT overrides the pin"),
        "{}",
        run.stderr
    );

    let unknown = run_in(&sb, &repo, &[], &["pin", "pinnd"]);
    unknown.code(1);
    assert!(
        unknown.stderr.contains("did you mean `pinned`"),
        "{}",
        unknown.stderr
    );

    run_in(&sb, &repo, &[], &["pin", "--clear"]).ok();
    assert!(!file.exists());
    assert_eq!(
        printed_token(&run_in(&sb, &repo, &[], &["token"])),
        "tok-cur"
    );
    let none = run_in(&sb, &repo, &[], &["pin"]);
    assert_eq!(none.ok().stdout, "");
    run_in(&sb, &repo, &[], &["pin", "--clear"]).ok();
    // Nothing of the store changed.
    assert_eq!(current_pointer(&sb), "current = \"org_cur\"\n");
}

#[test]
fn switch_warns_when_a_pin_or_mycli_context_still_overrides_it_here() {
    let sb = store(&ORGS);
    let repo = work(&sb).join("repo");
    pin(&repo, "organization = \"org_pin\"\n");
    let run = run_in(&sb, &repo, &[], &["switch", "envctx"]);
    assert!(
        run.ok().stderr.contains(&format!(
            "warning: {} still selects \"pinned\" here",
            repo.join(".mycli.toml").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        current_pointer(&sb).lines().next(),
        Some("current = \"org_env\"")
    );
    let run = run_in(
        &sb,
        &work(&sb),
        &[("MYCLI_CONTEXT", "flagctx")],
        &["switch", "cur"],
    );
    assert!(
        run.ok()
            .stderr
            .contains("warning: MYCLI_CONTEXT still selects \"flagctx\""),
        "{}",
        run.stderr
    );
    let run = run_in(&sb, &work(&sb), &[], &["switch", "pinned"]);
    assert!(!run.ok().stderr.contains("warning"), "{}", run.stderr);
    // Switching to what the pin selects anyway is not worth a warning.
    let run = run_in(&sb, &repo, &[], &["switch", "pinned"]);
    assert!(!run.ok().stderr.contains("warning"), "{}", run.stderr);
}

/// A store on a device-flow IdP, and a directory of it pinned by `pin_text`.
fn pinned_dir(pin_text: &str) -> (Idp, Sandbox, PathBuf) {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let dir = sb.tmp.path().join("repo");
    pin(&dir, pin_text);
    (idp, sb, dir)
}

/// `mycli login --device` run in `dir`, approved at the IdP as `approval` says.
fn device_login_in(idp: &Idp, sb: &Sandbox, dir: &Path, approval: Value) -> Run {
    let mut cmd = sb.cmd();
    cmd.current_dir(dir).args(["login", "--device"]);
    let bg = Bg::start(cmd, "login --device".into());
    idp.approve_device(approval);
    bg.finish(Duration::from_secs(30)).0
}

#[test]
fn login_without_org_inside_a_pinned_directory_signs_in_to_the_pinned_organization() {
    // alice belongs to two organizations: without the pin, the IdP would ask which one.
    let (idp, sb, dir) = pinned_dir("organization = \"org_globex\"\n");
    let run = device_login_in(&idp, &sb, &dir, json!({}));
    run.ok();
    assert!(
        run.stderr.contains("Signing in to org_globex"),
        "{}",
        run.stderr
    );
    let contexts = sb.contexts_json();
    assert_eq!(contexts.len(), 1);
    assert_eq!(contexts[0]["organization_id"], "org_globex");
    let token = printed_token(&run_in(&sb, &dir, &[], &["token"]));
    assert_valid_for(&token, "org_globex", &idp.base);

    // With acme current, refresh and logout without a NAME act on the pinned context here.
    let mut cmd = sb.cmd();
    cmd.args(["login", "--device", "--org", "org_acme", "--name", "acme"]);
    let bg = Bg::start(cmd, "login acme".into());
    idp.approve_device(json!({}));
    bg.finish(Duration::from_secs(30)).0.ok();
    let run = run_in(&sb, &dir, &[], &["refresh"]);
    assert!(
        run.ok().stderr.contains("Refreshed \"org-globex\"") || run.stderr.contains("globex"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("acme"), "{}", run.stderr);
    run_in(&sb, &dir, &[], &["logout"]).ok();
    let left: Vec<Value> = sb.contexts_json();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["organization_id"], "org_acme");
}

#[test]
fn login_inside_a_personal_pin_of_a_missing_context_gives_the_new_context_that_name() {
    let (idp, sb, dir) = pinned_dir("context = \"work\"\n");
    // bob belongs to one organization: the IdP signs him in to it.
    let run = device_login_in(&idp, &sb, &dir, json!({"email": "bob@example.com"}));
    run.ok();
    assert!(run.stderr.contains("does not exist yet"), "{}", run.stderr);
    let contexts = sb.contexts_json();
    assert_eq!(contexts.len(), 1);
    assert_eq!(contexts[0]["name"], "work");
    // The pin now selects it.
    let token = printed_token(&run_in(&sb, &dir, &[], &["token"]));
    assert_valid_for(&token, "org_acme", &idp.base);
}

// ---------------------------------------------------------------------------------------------
// mycli exec
// ---------------------------------------------------------------------------------------------

#[test]
fn exec_pins_the_context_hands_over_the_token_and_returns_the_exit_code() {
    let sb = store(&ORGS);
    let dir = work(&sb);
    let script = format!(
        "echo \"ctx=$MYCLI_CONTEXT tok=$MYCLI_TOKEN nested=$({bin} token)\"; exit 3",
        bin = BIN
    );
    let run = run_in(
        &sb,
        &dir,
        &[],
        &["--context", "envctx", "exec", "--", "sh", "-c", &script],
    );
    run.code(3);
    // MYCLI_CONTEXT holds the key: a rename meanwhile cannot move the command elsewhere.
    assert_eq!(run.stdout, "ctx=org_env tok=tok-envctx nested=tok-envctx\n");
    assert_eq!(run.stderr, "");

    // A pin selects for exec too; --env renames the variable; --no-token sets none (and
    // drops one inherited from an outer exec).
    pin(&dir, "organization = \"org_pin\"\n");
    let run = run_in(
        &sb,
        &dir,
        &[],
        &[
            "exec",
            "--env",
            "API_TOKEN",
            "--",
            "sh",
            "-c",
            "echo $API_TOKEN:$MYCLI_CONTEXT",
        ],
    );
    assert_eq!(run.ok().stdout, "tok-pinned:org_pin\n");
    let run = run_in(
        &sb,
        &dir,
        &[("MYCLI_TOKEN", "outer")],
        &[
            "exec",
            "--no-token",
            "--",
            "sh",
            "-c",
            "echo \"[${MYCLI_TOKEN-unset}]\"",
        ],
    );
    assert_eq!(run.ok().stdout, "[unset]\n");

    // The command finds the same store, even from elsewhere, even when it was given relative.
    let script = format!("cd / && {BIN} token");
    let run = run_in(
        &sb,
        sb.tmp.path(),
        &[("MYCLI_CONFIG_DIR", "elsewhere")],
        &[
            "--config-dir",
            "config",
            "--context",
            "cur",
            "exec",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    assert_eq!(run.ok().stdout, "tok-cur\n");

    // A missing command: 127 and one line, as a shell says it.
    let run = run_in(&sb, &dir, &[], &["exec", "--", "no-such-command-here"]);
    run.code(127);
    assert_eq!(
        run.stderr,
        "error: no-such-command-here: command not found\n"
    );
    // A command that is not executable: 126.
    let file = dir.join("not-executable");
    std::fs::write(&file, "echo hi\n").unwrap();
    run_in(&sb, &dir, &[], &["exec", "--", file.to_str().unwrap()]).code(126);
    // Death by a signal: 128 + N.
    let run = run_in(&sb, &dir, &[], &["exec", "--", "sh", "-c", "kill -KILL $$"]);
    run.code(137);
    let run = run_in(&sb, &dir, &[], &["exec", "--", "sh", "-c", "exit 255"]);
    run.code(255);
    // A bad variable name is a usage error.
    run_in(&sb, &dir, &[], &["exec", "--env", "A=B", "--", "true"]).code(2);
    run_in(&sb, &dir, &[], &["exec", "--"]).code(2);
}

/// A command that reports each SIGINT and SIGTERM it gets, and exits on the third.
const TRAPPER: &str = "n=0; trap 'n=$((n+1)); echo INT$n; [ $n -ge 3 ] && exit 20' INT; \
     trap 'echo TERM; exit 21' TERM; echo ready; while :; do sleep 0.05; done";

#[test]
fn exec_passes_sigint_and_sigterm_sent_to_mycli_on_to_the_command() {
    let sb = store(&ORGS);
    let mut cmd = sb.cmd();
    cmd.current_dir(work(&sb))
        .args(["exec", "--", "sh", "-c", TRAPPER]);
    let bg = Bg::start(cmd, "exec trapper".into());
    assert!(wait_for(Duration::from_secs(10), || bg
        .stdout
        .lock()
        .unwrap()
        .contains("ready")));
    // SIGINT to mycli alone reaches the command (once), and mycli keeps waiting for it.
    bg.sigint();
    assert!(wait_for(Duration::from_secs(10), || bg
        .stdout
        .lock()
        .unwrap()
        .contains("INT1")));
    let status = Command::new("kill")
        .args(["-TERM", &bg.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (run, _) = bg.finish(Duration::from_secs(10));
    assert_eq!(run.stdout, "ready\nINT1\nTERM\n");
    run.code(21);
}

#[test]
fn sigterm_to_exec_each_stops_the_command_and_the_remaining_runs() {
    // `timeout`, a CI runner or systemd stops mycli with SIGTERM: the running command gets it,
    // and no other context's command may start after it.
    let sb = store(&ORGS);
    let mut cmd = sb.cmd();
    cmd.current_dir(work(&sb)).args([
        "exec",
        "--each",
        "*",
        "--",
        "sh",
        "-c",
        "echo \"run $MYCLI_CONTEXT\"; i=0; while [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done",
    ]);
    let bg = Bg::start(cmd, "exec --each".into());
    assert!(wait_for(Duration::from_secs(10), || bg
        .stdout
        .lock()
        .unwrap()
        .contains("run ")));
    let status = Command::new("kill")
        .args(["-TERM", &bg.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (run, _) = bg.finish(Duration::from_secs(30));
    assert_eq!(run.stdout, "run org_cur\n", "{run:#?}");
    run.code(130);
}

#[test]
fn exec_each_runs_below_a_broken_pin_it_does_not_use() {
    // `--each` picks its contexts by pattern and pins each one for its command: the pin of the
    // working directory plays no part, so a broken one must not stop the runs.
    let sb = store(&ORGS);
    let dir = work(&sb).join("broken");
    pin(&dir, "colour = \"red\"\n");
    let run = run_in(
        &sb,
        &dir,
        &[],
        &[
            "exec",
            "--each",
            "org_?l*",
            "--",
            "sh",
            "-c",
            "echo $MYCLI_CONTEXT",
        ],
    );
    assert_eq!(run.ok().stdout, "org_flag\n");
}

#[test]
fn exec_each_runs_every_match_in_turn_and_reports_failures_and_skips() {
    let mut contexts = ORGS.to_vec();
    contexts.push(("org_gone", "gone"));
    let sb = store(&contexts);
    // `gone` needs a login: its config entry says so.
    let text = sb.config_text().replace(
        "[contexts.org_gone]\nname = \"gone\"\n",
        "[contexts.org_gone]\nname = \"gone\"\nneeds-login = true\n",
    );
    sb.write_config(&text);
    let script =
        "echo \"$MYCLI_CONTEXT:$MYCLI_TOKEN\"; [ \"$MYCLI_CONTEXT\" = org_env ] && exit 9; exit 0";
    let run = run_in(
        &sb,
        &work(&sb),
        &[],
        &["exec", "--each", "*", "--", "sh", "-c", script],
    );
    run.code(1);
    // In name order, the one after the failure still ran, the one needing a login did not.
    assert_eq!(
        run.stdout,
        "org_cur:tok-cur\norg_env:tok-envctx\norg_flag:tok-flagctx\norg_pin:tok-pinned\n"
    );
    let headers: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("==> "))
        .collect();
    assert_eq!(
        headers,
        [
            "==> cur (org_cur)",
            "==> envctx (org_env)",
            "==> flagctx (org_flag)",
            "==> gone (org_gone)",
            "==> pinned (org_pin)"
        ]
    );
    assert!(
        run.stderr
            .contains("skipped \"gone\": it needs a new login (run `mycli login --org org_gone`)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: 1 of 5 runs failed: envctx (exit 9); skipped, needing a login: gone"),
        "{}",
        run.stderr
    );

    // A glob on the organization id, all succeeding: exit 0.
    let run = run_in(
        &sb,
        &work(&sb),
        &[],
        &[
            "exec",
            "--each",
            "org_?l*",
            "--",
            "sh",
            "-c",
            "echo $MYCLI_CONTEXT",
        ],
    );
    assert_eq!(run.ok().stdout, "org_flag\n");
    let none = run_in(
        &sb,
        &work(&sb),
        &[],
        &["exec", "--each", "nomatch*", "--", "true"],
    );
    none.code(1);
    assert!(none.stderr.contains("no context matches \"nomatch*\""));
    run_in(
        &sb,
        &work(&sb),
        &[],
        &["--context", "cur", "exec", "--each", "*", "--", "true"],
    )
    .code(2);
}

#[test]
fn exec_refreshes_a_token_that_expires_within_five_minutes_first() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "access_token_ttl": 3600}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let mut cmd = sb.cmd();
    cmd.args(["login", "--device", "--org", "org_acme"]);
    let bg = Bg::start(cmd, "login".into());
    idp.approve_device(json!({}));
    bg.finish(Duration::from_secs(30)).0.ok();
    let first = printed_token(&sb.run(&["token"]));
    let before = idp.refreshes();
    // Valid for an hour: no refresh.
    let run = sb.run(&["exec", "--", "sh", "-c", "echo $MYCLI_TOKEN"]);
    assert_eq!(run.ok().stdout.trim(), first);
    assert_eq!(idp.refreshes(), before);
    // Four minutes left: `token` would hand it out, `exec` refreshes first.
    let cache = sb.token_file("org_acme");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    v["expires_at"] = json!(now() + 240);
    std::fs::write(&cache, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(printed_token(&sb.run(&["token"])), first);
    assert_eq!(idp.refreshes(), before);
    let run = sb.run(&["exec", "--", "sh", "-c", "echo $MYCLI_TOKEN"]);
    let handed = run.ok().stdout.trim().to_string();
    assert_eq!(idp.refreshes(), before + 1);
    assert_ne!(handed, first);
    assert_valid_for(&handed, "org_acme", &idp.base);
    assert!(claims(&handed)["exp"].as_i64().unwrap() > now() + 300);
}

// ---------------------------------------------------------------------------------------------
// A pty: shell, the picker, Ctrl-C
// ---------------------------------------------------------------------------------------------

/// `mycli ARGS` on a pseudo-terminal, through util-linux `script`: keys go in, the screen
/// comes out.
struct Pty {
    child: std::process::Child,
    screen: Arc<Mutex<String>>,
}

impl Pty {
    fn start(sb: &Sandbox, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Pty {
        // `exec`: no shell stays between the pty and mycli to take the Ctrl-C for itself.
        let line = std::iter::once("exec")
            .chain(std::iter::once(BIN))
            .chain(args.iter().copied())
            .enumerate()
            .map(|(i, a)| {
                if i == 0 {
                    a.to_string()
                } else {
                    format!("'{}'", a.replace('\'', "'\\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-f", "-c", &line, "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", sb.tmp.path())
            .env("TERM", "xterm")
            .env("SHELL", "/bin/sh")
            .env("LANG", "C.UTF-8")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in &sb.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .expect("util-linux `script` runs commands on a pty");
        let screen = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), screen.clone());
        Pty { child, screen }
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    fn wait_for(&self, needle: &str) {
        assert!(
            wait_for(Duration::from_secs(15), || self.screen().contains(needle)),
            "the terminal never showed {needle:?}:\n{}",
            self.screen()
        );
    }

    fn keys(&mut self, keys: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(keys.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) -> i32 {
        let end = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                std::time::Instant::now() < end,
                "still running:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn shell_starts_a_shell_with_the_context_pinned_and_exit_returns() {
    let sb = store(&ORGS);
    let mut pty = Pty::start(&sb, &work(&sb), &[], &["shell", "pinned"]);
    pty.wait_for("with context \"pinned\"");
    pty.keys(&format!(
        "echo \"in=$MYCLI_CONTEXT:$({BIN} token):$({BIN} prompt)\"\n"
    ));
    pty.wait_for("in=org_pin:tok-pinned:pinned");
    pty.keys("exit 7\n");
    assert_eq!(pty.finish(), 7);
    // The pointer never moved.
    assert_eq!(current_pointer(&sb), "current = \"org_cur\"\n");
}

#[test]
fn ctrl_c_on_the_terminal_reaches_the_command_once_and_mycli_waits_for_it() {
    let sb = store(&ORGS);
    let mut pty = Pty::start(&sb, &work(&sb), &[], &["exec", "--", "sh", "-c", TRAPPER]);
    pty.wait_for("ready");
    for n in 1..=3 {
        pty.keys("\u{3}");
        pty.wait_for(&format!("INT{n}"));
    }
    let screen = pty.screen.clone();
    assert_eq!(pty.finish(), 20);
    let screen = screen.lock().unwrap().clone();
    assert!(
        !screen.contains("INT4"),
        "a Ctrl-C was delivered twice:\n{screen}"
    );
}

#[test]
fn the_switch_picker_filters_chooses_and_cancels() {
    let sb = store(&ORGS);
    // Filter and choose.
    let mut pty = Pty::start(&sb, &work(&sb), &[], &["switch"]);
    pty.wait_for("Switch to which context?");
    pty.wait_for("flagctx");
    pty.keys("envc");
    pty.wait_for("envc");
    pty.keys("\r");
    pty.wait_for("Switched to context \"envctx\".");
    assert_eq!(pty.finish(), 0);
    assert!(current_pointer(&sb).starts_with("current = \"org_env\"\n"));

    // Arrows: down from the current one (envctx) is flagctx.
    let mut pty = Pty::start(&sb, &work(&sb), &[], &["switch"]);
    pty.wait_for("Switch to which context?");
    pty.wait_for("flagctx");
    // The list is drawn again once the arrow is taken: Enter goes after that.
    let drawn = pty.screen().matches("flagctx").count();
    pty.keys("\u{1b}[B");
    assert!(
        wait_for(Duration::from_secs(15), || pty
            .screen()
            .matches("flagctx")
            .count()
            > drawn),
        "the arrow was not taken:\n{}",
        pty.screen()
    );
    pty.keys("\r");
    pty.wait_for("Switched to context \"flagctx\".");
    assert_eq!(pty.finish(), 0);

    // Esc: exit 130, nothing changed.
    let before = store_files(&sb.config_dir);
    let mut pty = Pty::start(&sb, &work(&sb), &[], &["switch"]);
    pty.wait_for("Switch to which context?");
    pty.keys("\u{1b}");
    pty.wait_for("nothing changed");
    assert_eq!(pty.finish(), 130);
    assert_eq!(store_files(&sb.config_dir), before);
}

#[test]
fn switch_without_a_name_off_a_terminal_is_a_usage_error_listing_the_names() {
    let sb = store(&ORGS);
    let before = store_files(&sb.config_dir);
    let run = sb.run(&["switch"]);
    run.code(2);
    assert!(
        run.stderr
            .contains("known contexts: cur, envctx, flagctx, pinned"),
        "{}",
        run.stderr
    );
    assert_eq!(store_files(&sb.config_dir), before);
}

// ---------------------------------------------------------------------------------------------
// Tokens for other programs
// ---------------------------------------------------------------------------------------------

#[test]
fn token_prints_json_and_exec_credentials() {
    let sb = store(&ORGS);
    let run = run_in(
        &sb,
        &work(&sb),
        &[],
        &["--context", "pinned", "token", "-o", "json"],
    );
    let v: Value = serde_json::from_str(&run.ok().stdout).unwrap();
    let exp = v["expires_at"].as_str().unwrap();
    assert_eq!(
        v,
        json!({"access_token": "tok-pinned", "token_type": "Bearer", "expires_at": exp,
               "context": "pinned", "organization_id": "org_pin"})
    );
    assert!(exp.ends_with('Z') && exp.len() == 20, "{exp}");

    let run = run_in(&sb, &work(&sb), &[], &["token", "-o", "exec-credential"]);
    let v: Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(v["kind"], "ExecCredential");
    assert_eq!(v["status"]["token"], "tok-cur");
    assert_eq!(v["status"]["expirationTimestamp"], exp_of(&sb, "org_cur"));

    let beta = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#;
    let run = run_in(
        &sb,
        &work(&sb),
        &[("KUBERNETES_EXEC_INFO", beta)],
        &["token", "-o", "exec-credential"],
    );
    let v: Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1beta1");
    let alpha = r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#;
    let run = run_in(
        &sb,
        &work(&sb),
        &[("KUBERNETES_EXEC_INFO", alpha)],
        &["token", "-o", "exec-credential"],
    );
    run.code(1);
    assert_eq!(run.stdout, "");
    // Elsewhere it is refused.
    run_in(&sb, &work(&sb), &[], &["contexts", "-o", "exec-credential"]).code(2);
}

#[test]
fn token_in_every_format_loads_no_context_while_the_cache_is_fresh() {
    // kubectl runs `token -o exec-credential` before each of its commands: like plain `token`,
    // it reads the index's header, never the contexts. A damaged index body shows it: loading
    // the contexts would notice and rebuild the index.
    let sb = store(&ORGS);
    sb.run(&["contexts"]).ok();
    let index = sb.path("cache/config.index");
    let mut damaged = std::fs::read(&index).unwrap();
    let last = damaged.len() - 2;
    damaged[last] ^= 0x01;
    std::fs::write(&index, &damaged).unwrap();
    assert_eq!(printed_token(&sb.run(&["token"])), "tok-cur");
    let run = sb.run(&["token", "-o", "exec-credential"]);
    let v: Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(v["status"]["token"], "tok-cur");
    let run = sb.run(&["token", "-o", "json"]);
    let v: Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(
        (&v["context"], &v["access_token"]),
        (&json!("cur"), &json!("tok-cur"))
    );
    // By name (kubectl's exec entry names the context) or by key, from cache/names.
    let run = sb.run(&["--context", "pinned", "token", "-o", "exec-credential"]);
    let v: Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(v["status"]["token"], "tok-pinned");
    let run = sb.run(&["--context", "org_env", "token", "-o", "json"]);
    let v: Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(
        (&v["context"], &v["access_token"]),
        (&json!("envctx"), &json!("tok-envctx"))
    );
    assert!(
        std::fs::read(&index).unwrap() == damaged,
        "the contexts were loaded"
    );
    // A hand edit makes cache/names stale: the old name no longer selects anything.
    sb.write_config(
        &sb.config_text()
            .replace("name = \"pinned\"", "name = \"renamed\""),
    );
    sb.run(&["--context", "pinned", "token"]).code(1);
    assert_eq!(
        printed_token(&sb.run(&["--context", "renamed", "token"])),
        "tok-pinned"
    );
}

fn exp_of(sb: &Sandbox, key: &str) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(sb.token_file(key)).unwrap()).unwrap();
    let secs = v["expires_at"].as_i64().unwrap();
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A kubeconfig whose user runs `mycli token -o exec-credential`, and a real kubectl talking to
/// a local HTTPS API stub that records the Authorization header it got.
#[test]
fn kubectl_accepts_the_exec_credential() {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("kubectl") && have("openssl") && have("python3")) {
        skip(
            "kubectl, openssl or python3 missing: the ExecCredential schema is checked by token_prints_json_and_exec_credentials only",
        );
        return;
    }
    let sb = store(&ORGS);
    let dir = work(&sb);
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .current_dir(&dir)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let stub = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open("auth.log", "a") as f:
            f.write("%s %s\n" % (self.path.split("?")[0], self.headers.get("Authorization")))
        body = b"ok"
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain("cert.pem", "key.pem")
s.socket = c.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut server = Command::new("python3")
        .args(["-c", stub])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    let port = port.trim().to_string();
    for (api, context) in [
        ("client.authentication.k8s.io/v1", "pinned"),
        ("client.authentication.k8s.io/v1beta1", "envctx"),
    ] {
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
                 users:\n- name: me\n  user:\n    exec:\n      apiVersion: {api}\n      command: {BIN}\n      args: [\"--context\", \"{context}\", \"token\", \"-o\", \"exec-credential\"]\n      interactiveMode: Never\n      env:\n      - name: MYCLI_CONFIG_DIR\n        value: {}\n      - name: MYCLI_CREDENTIAL_STORE\n        value: file\n\
                 contexts:\n- name: c\n  context:\n    cluster: local\n    user: me\ncurrent-context: c\n",
                sb.config_dir.display()
            ),
        )
        .unwrap();
        let out = Command::new("kubectl")
            .args([
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "get",
                "--raw",
                "/healthz",
            ])
            .env("HOME", sb.tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
        let log = std::fs::read_to_string(dir.join("auth.log")).unwrap();
        assert!(
            log.contains(&format!("/healthz Bearer tok-{context}\n")),
            "{api}: the API server did not get the token:\n{log}"
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn prompt_follows_a_hand_edit_of_config_toml_at_once() {
    let sb = store(&ORGS);
    let repo = work(&sb).join("repo");
    pin(&repo, "organization = \"org_pin\"\n");
    // The first run builds the index; the answer comes from it afterwards.
    for _ in 0..2 {
        assert_eq!(run_in(&sb, &repo, &[], &["prompt"]).ok().stdout, "pinned\n");
        assert_eq!(
            run_in(&sb, &work(&sb), &[], &["prompt"]).ok().stdout,
            "cur\n"
        );
        let env = [("MYCLI_CONTEXT", "org_env")];
        assert_eq!(
            run_in(&sb, &repo, &env, &["prompt"]).ok().stdout,
            "envctx\n"
        );
    }
    // A rename by hand: the index is stale and not believed.
    let text = sb
        .config_text()
        .replace("name = \"pinned\"", "name = \"renamed\"");
    sb.write_config(&text);
    assert_eq!(
        run_in(&sb, &repo, &[], &["prompt"]).ok().stdout,
        "renamed\n"
    );
    let env = [("MYCLI_CONTEXT", "pinned")];
    assert_eq!(run_in(&sb, &repo, &env, &["prompt"]).ok().stdout, "");
}

#[test]
fn prompt_answers_from_cache_names_alone() {
    // cache/names holds the fingerprint of config.toml: when it answers, nothing else is read
    // or parsed (config.toml would be, and the index rebuilt, had prompt checked the index too).
    let sb = store(&ORGS);
    sb.run(&["contexts"]).ok();
    std::fs::remove_file(sb.path("cache/config.index")).unwrap();
    assert_eq!(sb.run(&["prompt"]).ok().stdout, "cur\n");
    assert!(
        !sb.path("cache/config.index").exists(),
        "prompt parsed config.toml although cache/names answered"
    );
    // A dangling pointer shows nothing, from the names file as from the store.
    std::fs::write(sb.path("current.toml"), "current = \"org_gone\"\n").unwrap();
    assert_eq!(sb.run(&["prompt"]).ok().stdout, "");
    sb.write_config(&sb.config_text().replace("\n\n", "\n\n\n"));
    assert_eq!(sb.run(&["prompt"]).ok().stdout, "");
}

// ---------------------------------------------------------------------------------------------
// Hostile pins, paths and environments: what a cloned repository, a shared directory or a
// slip of the keyboard can make these commands do
// ---------------------------------------------------------------------------------------------

/// `mycli ARGS` in `dir`, killed (and the test failed) if it is still running after 10 s.
fn run_in_bounded(sb: &Sandbox, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = sb.cmd();
    cmd.current_dir(dir).args(args);
    Bg::start(cmd, format!("mycli {}", args.join(" ")))
        .finish(Duration::from_secs(10))
        .0
}

#[test]
fn a_pin_that_is_a_fifo_a_device_or_a_directory_is_refused_at_once() {
    let sb = store(&ORGS);
    let fifo = work(&sb).join("fifo");
    std::fs::create_dir_all(&fifo).unwrap();
    let made = Command::new("mkfifo")
        .arg(fifo.join(".mycli.toml"))
        .status()
        .unwrap();
    assert!(made.success());
    let device = work(&sb).join("device");
    std::fs::create_dir_all(&device).unwrap();
    std::os::unix::fs::symlink("/dev/zero", device.join(".mycli.toml")).unwrap();
    let directory = work(&sb).join("directory");
    std::fs::create_dir_all(directory.join(".mycli.toml")).unwrap();
    for dir in [&fifo, &device, &directory] {
        // Opening a FIFO for reading waits for a writer: `token` (and every shell prompt
        // there) would hang.
        let run = run_in_bounded(&sb, &dir.join("."), &["token"]);
        run.code(1);
        assert!(
            run.stderr.contains("not a regular file") && run.stderr.contains("hint: "),
            "{run:#?}"
        );
        assert_eq!(run.stdout, "");
        let run = run_in_bounded(&sb, dir, &["prompt"]);
        run.ok();
        assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
    }
}

#[test]
fn a_pin_another_user_planted_in_a_shared_directory_is_ignored() {
    use std::os::unix::fs::PermissionsExt;
    let sb = store(&ORGS);
    // /tmp-like: anyone may create files in it (the sticky bit keeps them from deleting
    // others'); another user's pin there would steer every mycli run below it.
    let shared = work(&sb).join("shared");
    let below = shared.join("mine");
    std::fs::create_dir_all(&below).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    pin(&shared, "organization = \"org_pin\"\n");
    if std::os::unix::fs::chown(shared.join(".mycli.toml"), Some(65534), Some(65534)).is_err() {
        eprintln!("skipped: only root can give a file to another user");
        return;
    }
    let run = run_in(&sb, &below, &[], &["token"]);
    assert_eq!(printed_token(&run), "tok-cur", "{run:#?}");
    assert_eq!(run_in(&sb, &below, &[], &["prompt"]).ok().stdout, "cur\n");
    // A planted FIFO is ignored as well: it cannot hang anything.
    std::fs::remove_file(shared.join(".mycli.toml")).unwrap();
    let made = Command::new("mkfifo")
        .arg(shared.join(".mycli.toml"))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::chown(shared.join(".mycli.toml"), Some(65534), Some(65534)).unwrap();
    assert_eq!(
        printed_token(&run_in_bounded(&sb, &below, &["token"])),
        "tok-cur"
    );
    // So is their link to a file of root's, which would stop every mycli below it.
    std::fs::remove_file(shared.join(".mycli.toml")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", shared.join(".mycli.toml")).unwrap();
    std::os::unix::fs::lchown(shared.join(".mycli.toml"), Some(65534), Some(65534)).unwrap();
    assert_eq!(
        printed_token(&run_in(&sb, &below, &[], &["token"])),
        "tok-cur"
    );
    // Your own pin there counts; so does another user's in a directory only they can write
    // (a checkout you were given, a bind mount in a container).
    std::fs::remove_file(shared.join(".mycli.toml")).unwrap();
    pin(&shared, "organization = \"org_pin\"\n");
    assert_eq!(
        printed_token(&run_in(&sb, &below, &[], &["token"])),
        "tok-pinned"
    );
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(shared.join(".mycli.toml"), Some(65534), Some(65534)).unwrap();
    assert_eq!(
        printed_token(&run_in(&sb, &below, &[], &["token"])),
        "tok-pinned"
    );
}

fn assert_no_control_characters(run: &Run) {
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{what} carries control characters: {text:?}"
        );
    }
}

#[test]
fn terminal_escapes_in_a_pin_or_its_directory_name_never_reach_the_terminal() {
    let sb = store(&ORGS);
    // TOML can spell any character in a quoted key.
    let dir = work(&sb).join("keys");
    pin(&dir, "\"\\u001b]0;PWNED\\u0007\\u001b[2J\" = 1\n");
    let run = run_in(&sb, &dir, &[], &["token"]);
    run.code(1);
    assert!(run.stderr.contains("unknown key"), "{run:#?}");
    assert_no_control_characters(&run);
    // A directory of a cloned repository may be named with any byte but `/` and NUL.
    let dir = work(&sb).join("evil\u{1b}]0;PWNED\u{7}\u{1b}[2J\ndir");
    pin(&dir, "organization = \"org_nobody\"\n");
    for args in [&["token"][..], &["status"], &["pin"], &["current"]] {
        let run = run_in(&sb, &dir, &[], args);
        assert!(
            run.stderr.contains("org_nobody") || run.stdout.contains("org_nobody"),
            "{run:#?}"
        );
        assert_no_control_characters(&run);
    }
    pin(&dir, "colour = \"red\"\n");
    let run = run_in(&sb, &dir, &[], &["token"]);
    run.code(1);
    assert_no_control_characters(&run);
    // A value that reads differently from what it is (a bidi override) is no name and no
    // organization id.
    for text in [
        "organization = \"org_\\u202eevil\"\n",
        "context = \"pinned\\u200b\"\n",
    ] {
        pin(&dir, text);
        let run = run_in(&sb, &dir, &[], &["token"]);
        run.code(1);
        assert!(run.stderr.contains("is not a usable name"), "{run:#?}");
    }
    assert_eq!(
        run.stderr.lines().count(),
        2,
        "one error line and a hint: {run:#?}"
    );
}

#[test]
fn a_hint_never_hands_out_a_command_a_pin_wrote() {
    let sb = store(&ORGS);
    let dir = work(&sb).join("meta");
    // Copied from the hint and pasted into a shell, this would run `sh`.
    pin(&dir, "organization = \"org_x;touch${IFS}pwned|sh\"\n");
    for args in [&["token"][..], &["status"]] {
        let run = run_in(&sb, &dir, &[], args);
        run.code(4);
        assert!(
            run.stderr
                .contains("`mycli login --org 'org_x;touch${IFS}pwned|sh'`"),
            "{run:#?}"
        );
    }
}

#[test]
fn exec_refuses_a_variable_that_would_hand_the_token_to_mycli_or_the_loader() {
    let sb = store(&ORGS);
    let dir = work(&sb);
    for var in [
        "MYCLI_CONTEXT",
        "MYCLI_CONFIG_DIR",
        "MYCLI_ISSUER",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
    ] {
        // A nested mycli would resolve the token as a context name and print it in its error;
        // the dynamic loader prints a bad LD_PRELOAD entry to every process's stderr.
        let run = run_in(&sb, &dir, &[], &["exec", "--env", var, "--", BIN, "token"]);
        run.code(2);
        assert!(!run.stderr.contains("tok-"), "{var}: {run:#?}");
        assert!(run.stderr.contains(var), "{var}: {run:#?}");
    }
    // The default name, and any other, still work.
    let run = run_in(
        &sb,
        &dir,
        &[],
        &[
            "exec",
            "--env",
            "MYCLI_TOKEN",
            "--",
            "sh",
            "-c",
            "echo $MYCLI_TOKEN",
        ],
    );
    assert_eq!(run.ok().stdout, "tok-cur\n");
}

#[test]
fn a_ceiling_list_with_a_non_utf8_entry_still_stops_the_search() {
    use std::os::unix::ffi::OsStringExt;
    let sb = store(&ORGS);
    let repo = work(&sb).join("repo");
    let deep = repo.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    pin(&repo, "context = \"pinned\"\n");
    let mut ceilings = repo.join("a").into_os_string().into_vec();
    ceilings.extend_from_slice(b":/mnt/caf\xe9");
    let mut cmd = sb.cmd();
    cmd.current_dir(&deep)
        .env("MYCLI_CEILING_DIRS", std::ffi::OsString::from_vec(ceilings))
        .arg("token");
    let out = cmd.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tok-cur\n", "{out:?}");
}

#[test]
fn ctrl_c_while_exec_each_refreshes_a_token_stops_the_runs() {
    let idp = Idp::start();
    idp.scenario(json!({"device_interval": 1, "access_token_ttl": 3600}));
    let mut sb = Sandbox::new();
    sb.use_idp(&idp);
    let mut cmd = sb.cmd();
    cmd.args(["login", "--device", "--org", "org_acme"]);
    let bg = Bg::start(cmd, "login".into());
    idp.approve_device(json!({}));
    bg.finish(Duration::from_secs(30)).0.ok();
    // Four minutes left: `exec` refreshes first, and the IdP takes its time.
    let cache = sb.token_file("org_acme");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    v["expires_at"] = json!(now() + 240);
    std::fs::write(&cache, serde_json::to_vec(&v).unwrap()).unwrap();
    idp.scenario(json!({"refresh_delay_ms": 3000}));
    let before = idp.refreshes();
    let mut cmd = sb.cmd();
    cmd.args(["exec", "--each", "*", "--", "sh", "-c", "echo ran"]);
    let bg = Bg::start(cmd, "exec --each".into());
    // Ctrl-C while the refresh is at the IdP (which holds it for 3 s).
    assert!(wait_for(Duration::from_secs(10), || idp.refreshes() > before));
    bg.sigint();
    let (run, _) = bg.finish(Duration::from_secs(20));
    // The refresh already sent is finished and saved; no command runs after Ctrl-C.
    run.code(130);
    assert!(!run.stdout.contains("ran"), "{run:#?}");
    assert_eq!(idp.refreshes(), before + 1);
    assert!(printed_token(&sb.run(&["token"])).len() > 20);
}

#[test]
fn exec_and_shell_keep_their_organization_when_contexts_are_renamed_meanwhile() {
    let sb = store(&ORGS);
    let dir = work(&sb);
    // While the command runs, another terminal renames envctx away and gives its name to
    // another organization's context: the command must go on with the organization it was
    // started for.
    let script = format!(
        "{BIN} rename envctx old-env >/dev/null 2>&1 && {BIN} rename cur envctx >/dev/null 2>&1 \
         && echo \"$({BIN} token) $({BIN} prompt)\""
    );
    let run = run_in(
        &sb,
        &dir,
        &[],
        &["--context", "envctx", "exec", "--", "sh", "-c", &script],
    );
    assert_eq!(run.ok().stdout, "tok-envctx old-env\n", "{run:#?}");
    let mut cmd = sb.cmd();
    cmd.current_dir(&dir)
        .env("SHELL", "/bin/sh")
        .args(["shell", "old-env"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let script = format!(
        "{BIN} rename old-env env2 >/dev/null 2>&1 && {BIN} rename envctx old-env >/dev/null 2>&1 \
         && {BIN} token\n"
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tok-envctx\n",
        "{out:?}"
    );
}

#[test]
fn pin_replaces_a_symlinked_pin_never_the_file_it_points_to() {
    let sb = store(&ORGS);
    let repo = work(&sb).join("cloned");
    std::fs::create_dir_all(&repo).unwrap();
    // A cloned repository can ship `.mycli.toml` as a link to any file of yours.
    let victim = sb.tmp.path().join("precious.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink("../../precious.txt", repo.join(".mycli.toml")).unwrap();
    let run = run_in(&sb, &repo, &[], &["pin", "pinned"]);
    run.ok();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let pin = repo.join(".mycli.toml");
    assert!(
        !std::fs::symlink_metadata(&pin)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&pin).unwrap().contains("org_pin"));
    assert_eq!(
        printed_token(&run_in(&sb, &repo, &[], &["token"])),
        "tok-pinned"
    );
}

/// `mycli ARGS`, failing the test instead of hanging when it does not end within 5 s.
fn bounded(sb: &Sandbox, args: &[&str]) -> Run {
    let mut cmd = sb.cmd();
    cmd.args(args);
    Bg::start(cmd, format!("mycli {}", args.join(" ")))
        .finish(Duration::from_secs(5))
        .0
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn a_store_file_of_absurd_size_is_an_error_not_a_crash() {
    // A sparse file claims a terabyte it does not hold: reading it must not try to allocate
    // that much up front (which aborts the process), whatever file it is.
    let sb = store(&ORGS);
    let huge = |path: &Path| {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(1 << 40).unwrap();
    };
    let token = sb.token_file("org_cur");
    huge(&token);
    let run = sb.run(&["token"]);
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(!run.stderr.contains("memory allocation"), "{run:#?}");
    std::fs::remove_file(&token).unwrap();
    huge(&sb.path("current.toml"));
    let run = sb.run(&["current"]);
    run.code(1);
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(run.stderr.contains("current.toml"), "{run:#?}");
    let run = sb.run(&["prompt"]);
    assert_eq!((run.ok().stdout.as_str(), run.stderr.as_str()), ("", ""));
}

#[test]
fn a_fifo_in_the_store_never_hangs_token_or_prompt() {
    // `mycli prompt` runs in every shell prompt: a FIFO where a store file should be (made by
    // a script or by mistake) must not freeze the shell.
    let sb = store(&ORGS);
    sb.run(&["contexts"]).ok();
    // Derived files: ignored and rebuilt.
    mkfifo(&sb.path("cache/config.index"));
    mkfifo(&sb.path("cache/names"));
    assert_eq!(bounded(&sb, &["prompt"]).ok().stdout, "cur\n");
    assert_eq!(printed_token(&bounded(&sb, &["token"])), "tok-cur");
    assert!(
        bounded(&sb, &["contexts", "-o", "name"])
            .ok()
            .stdout
            .contains("pinned")
    );
    // The pointer itself: one clear error, at once.
    mkfifo(&sb.path("current.toml"));
    let run = bounded(&sb, &["token"]);
    run.code(1);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(bounded(&sb, &["prompt"]).ok().stdout, "");
}
