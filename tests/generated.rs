#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

// Generated artifacts (completions/, man/) stay in step with the clap definitions, and the
// dynamic completion of context names works through the real binary.
//
// To refresh the committed copies: MYCLI_UPDATE_GENERATED=1 cargo test --test generated

use std::collections::BTreeMap;
use std::path::Path;

use clap::ValueEnum;
use common::*;
use mycli::cli::{Cli, Shell};
use mycli::commands::completions::{file_name, script};

const UPDATE_VAR: &str = "MYCLI_UPDATE_GENERATED";

fn updating() -> bool {
    std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1")
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Compares `dir` (relative to the repository) with `expected`, or rewrites it when updating.
fn check_or_update(dir: &str, expected: &BTreeMap<String, Vec<u8>>) {
    let path = repo().join(dir);
    if updating() {
        if path.exists() {
            std::fs::remove_dir_all(&path).unwrap();
        }
        std::fs::create_dir_all(&path).unwrap();
        for (name, bytes) in expected {
            std::fs::write(path.join(name), bytes).unwrap();
        }
        return;
    }
    let committed = read_dir(&path);
    let mut drift = Vec::new();
    for name in expected.keys() {
        match committed.get(name) {
            None => drift.push(format!("{dir}/{name} is missing")),
            Some(bytes) if bytes != &expected[name] => {
                drift.push(format!("{dir}/{name} is out of date"));
            }
            Some(_) => {}
        }
    }
    for name in committed.keys() {
        if !expected.contains_key(name) {
            drift.push(format!("{dir}/{name} is not generated any more"));
        }
    }
    assert!(
        drift.is_empty(),
        "the committed {dir}/ drifted from src/cli.rs:\n  {}\nrun `{UPDATE_VAR}=1 cargo test --test generated` and commit the result",
        drift.join("\n  ")
    );
}

fn shell_name(shell: Shell) -> String {
    shell.to_possible_value().unwrap().get_name().to_string()
}

// ---------------------------------------------------------------------------------------------
// completion scripts

#[test]
fn completions_prints_a_script_for_every_shell() {
    let sb = Sandbox::new();
    assert_eq!(Shell::value_variants().len(), 5);
    for &shell in Shell::value_variants() {
        let name = shell_name(shell);
        let run = sb.run(&["completions", &name]);
        run.ok();
        assert!(!run.stdout.trim().is_empty(), "{name}");
        assert_eq!(run.stdout, script(shell).unwrap(), "{name}");
        // The script calls back into mycli, which is how context names complete.
        assert!(
            run.stdout.contains("_MYCLI_COMPLETE"),
            "{name}: {}",
            run.stdout
        );
        assert!(run.stdout.contains("mycli"), "{name}");
        assert!(run.stderr.is_empty(), "{name}: {}", run.stderr);
    }
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        sb.run(&["completions", shell]).ok();
    }
    let run = sb.run(&["completions", "tcsh"]);
    run.code(2);
    assert_eq!(run.stdout, "");
}

#[test]
fn committed_completion_scripts_match_the_cli() {
    let expected: BTreeMap<String, Vec<u8>> = Shell::value_variants()
        .iter()
        .map(|&shell| {
            (
                file_name(shell).to_string(),
                script(shell).unwrap().into_bytes(),
            )
        })
        .collect();
    let names: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "_mycli",
            "_mycli.ps1",
            "mycli.bash",
            "mycli.elv",
            "mycli.fish"
        ]
    );
    check_or_update("completions", &expected);
}

// ---------------------------------------------------------------------------------------------
// man pages

/// A page for mycli and one per command: clap's NAME, SYNOPSIS (the usage line), DESCRIPTION
/// and OPTIONS, then EXAMPLES (the command's after-help), ENVIRONMENT, FILES and EXIT STATUS
/// from `src/cli.rs`. Markdown backticks become bold.
fn man_pages() -> BTreeMap<String, Vec<u8>> {
    let mut top = Cli::command();
    top.build();
    let version = top.get_version().unwrap_or_default().to_string();
    let mut pages = BTreeMap::new();
    pages.insert("mycli.1".to_string(), man_page(&top, "mycli", &version));
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("mycli-{}", sub.get_name());
        pages.insert(format!("{name}.1"), man_page(sub, &name, &version));
    }
    pages
}

fn man_page(cmd: &clap::Command, name: &str, version: &str) -> Vec<u8> {
    let mut cmd = cmd.clone();
    let usage = cmd.render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim().to_string();
    let leaked: &'static str = name.to_owned().leak();
    let cmd = cmd.name(leaked).override_usage(usage);
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .source(format!("mycli {version}"))
        .manual("mycli manual");
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    if cmd.get_subcommands().next().is_some() {
        man.render_subcommands_section(&mut out).unwrap();
    }
    // Each section rendered alone repeats roff's preamble; once is enough.
    let mut seen = std::collections::HashSet::new();
    let mut text: String = String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| {
            !(l.starts_with(".ie \\n(.g") || l.starts_with(".el .ds Aq")) || seen.insert(*l)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(after) = cmd.get_after_help() {
        let after = after.to_string();
        let examples = after.strip_prefix("Examples:\n").unwrap_or(&after);
        text.push_str(".SH EXAMPLES\n.nf\n");
        text.push_str(&roff_text(examples));
        text.push_str("\n.fi\n");
    }
    let section = |text: &mut String, title: &str, items: &[(&str, &str)]| {
        text.push_str(&format!(".SH {title}\n"));
        for (term, what) in items {
            text.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                roff_text(term),
                roff_text(what)
            ));
        }
    };
    section(&mut text, "ENVIRONMENT", mycli::cli::ENVIRONMENT);
    section(&mut text, "FILES", mycli::cli::FILES);
    section(&mut text, "EXIT STATUS", mycli::cli::EXIT_STATUS);
    bold_backticks(&text).into_bytes()
}

/// Text for roff: backslashes doubled, hyphens and leading dots and quotes escaped.
fn roff_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            let escaped = line.replace('\\', "\\e").replace('-', "\\-");
            if escaped.starts_with('.') || escaped.starts_with('\'') {
                format!("\\&{escaped}")
            } else {
                escaped
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `code` spans (written for the terminal) become bold in the page.
fn bold_backticks(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.matches('`').count() % 2 != 0 {
                return line.to_string();
            }
            let mut out = String::with_capacity(line.len());
            for (i, part) in line.split('`').enumerate() {
                if i > 0 {
                    out.push_str(if i % 2 == 1 { "\\fB" } else { "\\fR" });
                }
                out.push_str(part);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn committed_man_pages_match_the_cli() {
    let pages = man_pages();
    // One page for mycli and one per subcommand.
    let mut want = vec!["mycli.1".to_string()];
    want.extend(
        Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("mycli-{}.1", s.get_name())),
    );
    want.sort();
    assert_eq!(pages.keys().cloned().collect::<Vec<_>>(), want);
    for sub in [
        "login",
        "switch",
        "contexts",
        "current",
        "token",
        "refresh",
        "status",
        "logout",
        "rename",
        "completions",
    ] {
        assert!(pages.contains_key(&format!("mycli-{sub}.1")), "{sub}");
    }
    check_or_update("man", &pages);
}

#[test]
fn the_man_page_documents_the_exit_codes() {
    let pages = man_pages();
    let top = String::from_utf8(pages["mycli.1"].clone()).unwrap();
    for text in [
        "Exit codes",
        "0 success",
        "1 failure",
        "2 usage",
        "4 a new login is needed",
        "130 interrupted",
    ] {
        assert!(top.contains(text), "mycli.1 lacks {text:?}");
    }
}

#[test]
fn every_man_page_has_examples_environment_files_and_exit_status() {
    for (name, bytes) in man_pages() {
        let page = String::from_utf8(bytes).unwrap();
        for section in [
            ".SH SYNOPSIS",
            ".SH EXAMPLES",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH EXIT STATUS",
        ] {
            assert!(page.contains(section), "{name} lacks {section}");
        }
        assert!(!page.contains('`'), "{name} shows Markdown backticks");
        assert!(!page.contains(".SH EXTRA"), "{name}");
        // The footer names the program and its version, not the subcommand.
        let th = page.lines().find(|l| l.starts_with(".TH ")).unwrap();
        assert!(
            th.contains(&format!("\"mycli {}\"", env!("CARGO_PKG_VERSION"))),
            "{name}: {th}"
        );
        for var in [
            "MYCLI_CREDENTIAL_STORE",
            "MYCLI_HTTP_TIMEOUT",
            "BROWSER",
            "NO_COLOR",
        ] {
            assert!(page.contains(var), "{name} lacks {var}");
        }
    }
    let login = String::from_utf8(man_pages()["mycli-login.1"].clone()).unwrap();
    let synopsis = login
        .lines()
        .skip_while(|l| *l != ".SH SYNOPSIS")
        .nth(1)
        .unwrap();
    assert!(synopsis.contains("mycli login"), "{synopsis}");
    assert!(!synopsis.contains("[\\fB\\-\\-context\\fR]"), "{synopsis}");
}

// ---------------------------------------------------------------------------------------------
// dynamic completion of context names

fn completion_store() -> Sandbox {
    let sb = Sandbox::new();
    let mut text = String::from("current = \"org_acme\"\n\n");
    text.push_str(&context_toml("org_acme", "acme"));
    text.push_str(&context_toml("org_globex", "globex"));
    sb.write_config(&text);
    sb
}

/// What the shell's <TAB> gets for `mycli WORDS...` (the last word is the one completed).
fn complete(sb: &Sandbox, shell: &str, words: &[&str]) -> (Vec<String>, Run) {
    let mut cmd = sb.cmd();
    cmd.env("_MYCLI_COMPLETE", shell)
        .arg("--")
        .arg("mycli")
        .args(words);
    if shell == "bash" {
        // bash passes the index of the word under the cursor (COMP_CWORD) and its IFS.
        cmd.env("_CLAP_COMPLETE_INDEX", words.len().to_string())
            .env("_CLAP_IFS", "\n");
    }
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // fish gets `value<TAB>help` lines; bash gets bare values.
    let values = run
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    (values, run)
}

fn has(values: &[String], name: &str) -> bool {
    values.iter().any(|v| v == name)
}

#[test]
fn context_names_complete_for_switch_rename_and_context() {
    let sb = completion_store();
    let cases: [&[&str]; 7] = [
        &["switch", ""],
        &["use", ""],
        &["rename", ""],
        &["--context", ""],
        &["current", "--context", ""],
        &["status", ""],
        &["logout", ""],
    ];
    for shell in ["fish", "bash"] {
        for words in cases {
            let (values, run) = complete(&sb, shell, words);
            run.ok();
            assert!(
                has(&values, "acme") && has(&values, "globex"),
                "{shell} {words:?}: {values:?}"
            );
            assert!(run.stderr.is_empty(), "{shell} {words:?}: {}", run.stderr);
        }
    }

    // The typed prefix filters.
    let (values, _) = complete(&sb, "fish", &["switch", "gl"]);
    assert_eq!(values, ["globex"]);

    // A new name is free text: existing names would be refused, so none are offered.
    let (values, run) = complete(&sb, "fish", &["rename", "acme", ""]);
    run.ok();
    assert!(
        !has(&values, "acme") && !has(&values, "globex"),
        "{values:?}"
    );
}

#[test]
fn fish_describes_each_context_by_its_organization() {
    let sb = Sandbox::new();
    let mut text = context_toml("org_acme", "acme");
    text.push_str(&context_toml("_none", "personal"));
    text = text.replacen(
        "name = \"acme\"\n",
        "name = \"acme\"\norganization-name = \"Acme Corp\"\n",
        1,
    );
    sb.write_config(&text);
    let (_, run) = complete(&sb, "fish", &["switch", ""]);
    run.ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.contains(&"acme\tAcme Corp"), "{lines:?}");
    // The session without an organization is not described by its internal key.
    assert!(lines.contains(&"personal\tno organization"), "{lines:?}");
}

#[test]
fn completion_reads_the_store_without_writing_it() {
    let sb = completion_store();
    let before = sb.config_text();
    let files = |sb: &Sandbox| {
        let mut names: Vec<String> = std::fs::read_dir(&sb.config_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let listed = files(&sb);
    complete(&sb, "fish", &["switch", ""]).1.ok();
    assert_eq!(sb.config_text(), before);
    assert!(!sb.path("locks").exists(), "no lock taken on <TAB>");
    assert_eq!(files(&sb), listed, "<TAB> wrote into the config dir");
}

#[test]
fn completion_on_a_corrupt_store_is_silent() {
    let sb = completion_store();
    let broken = sb
        .config_text()
        .replace("name = \"globex\"", "name = globex");
    sb.write_config(&broken);
    for shell in ["fish", "bash"] {
        for words in [&["switch", ""][..], &["--context", ""], &["rename", ""]] {
            let (values, run) = complete(&sb, shell, words);
            assert_eq!(run.code, Some(0), "{shell} {words:?}: {run:#?}");
            assert!(
                !has(&values, "acme") && !has(&values, "globex"),
                "{shell} {words:?}: {values:?}"
            );
            assert_eq!(run.stderr, "", "{shell} {words:?}");
        }
    }
    assert_eq!(sb.config_text(), broken, "left exactly as it was");
}

#[test]
fn completion_follows_the_config_dir_on_the_line() {
    let sb = completion_store();
    // The environment points elsewhere; the line being completed names the real store.
    let mut other = Sandbox::new();
    other.write_config(&context_toml("org_other", "other"));
    other.set("MYCLI_CONFIG_DIR", &other.config_dir.display().to_string());
    let dir = sb.config_dir.display().to_string();
    let mut cmd = other.cmd();
    cmd.env("_MYCLI_COMPLETE", "fish")
        .args(["--", "mycli", "--config-dir", &dir, "switch", ""]);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("acme") && text.contains("globex"), "{text}");
    assert!(!text.contains("other"), "{text}");
}

#[test]
fn a_variable_named_complete_is_not_a_completion_request() {
    // `COMPLETE` is a common name (clap's default for its completion hook): set for anything
    // else, it must not turn commands into completion requests.
    let sb = completion_store();
    let mut cmd = sb.cmd();
    let out = cmd
        .env("COMPLETE", "1")
        .args(["contexts", "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "acme\nglobex\n");
}
