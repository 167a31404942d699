//! `mycli exec`: a command run with its context pinned and a fresh access token in its
//! environment; `--each` runs it once per matching context. Also the child-process plumbing
//! `mycli shell` shares: signals reach the child, its exit status becomes mycli's.

use std::ffi::OsString;
use std::process::Command;

use crate::app::App;
use crate::cli::ExecArgs;
use crate::env;
use crate::error::{Error, Kind, Result};
use crate::select::{Rule, Selection};
use crate::session;
use crate::store::tokens::{self, CachedToken};
use crate::store::{Config, Context};

/// `exec` hands out a token that stays valid this long, refreshing it first when needed.
pub const EXEC_MARGIN_SECS: i64 = 300;

pub fn run(app: &App, args: ExecArgs) -> Result<()> {
    let token_var = if args.no_token {
        None
    } else {
        Some(check_var_name(&args.env_name)?)
    };
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Error::usage("no command to run").with_hint("mycli exec -- CMD [ARGS...]"));
    };
    let config = Config::load(&app.paths)?;
    if let Some(pattern) = &args.each {
        // The pattern picks the contexts: the working directory's pin plays no part (a broken
        // one must not stop the runs), so no directory walk either.
        if app.context.is_some() && Selection::of(app)?.rule == Rule::Flag {
            return Err(Error::usage("--each and --context cannot be combined")
                .with_hint("--each PATTERN picks the contexts; drop --context"));
        }
        return each(app, &config, pattern, token_var, program, rest);
    }
    let key = Selection::of(app)?.key(&config)?;
    let token = match token_var {
        Some(var) => Some((var, token_for_exec(app, &key)?)),
        None => None,
    };
    let mut cmd = child(app, &key, program, rest);
    match &token {
        Some((var, token)) => cmd.env(var, token.access_token.expose()),
        None => cmd.env_remove(env::TOKEN),
    };
    crate::interrupt::hand_over();
    match run_child(cmd, program)? {
        Ended { code: 0, .. } => Ok(()),
        Ended { code, .. } => Err(Error::new(Kind::Exit(code), "")),
    }
}

/// `--each PATTERN`: one run per matching context, in name order, one after the other.
fn each(
    app: &App,
    config: &Config,
    pattern: &str,
    token_var: Option<&str>,
    program: &OsString,
    rest: &[OsString],
) -> Result<()> {
    let mut targets: Vec<(&String, &Context)> = config
        .contexts
        .iter()
        .filter(|(key, ctx)| glob(pattern, &ctx.name) || glob(pattern, key))
        .collect();
    if targets.is_empty() {
        return Err(
            Error::failure(format!("no context matches {pattern:?}")).with_hint(
                "the pattern matches a context's name or organization id (`*` for all); `mycli contexts` lists them",
            ),
        );
    }
    targets.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let mut failed: Vec<String> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (key, ctx) in &targets {
        app.ui.say(&format!(
            "==> {} ({})",
            ctx.name,
            Context::organization_id(key).unwrap_or("no organization")
        ));
        if ctx.needs_login {
            skipped.push(skip_for_login(app, key, ctx));
            continue;
        }
        let mut cmd = child(app, key, program, rest);
        match token_var {
            Some(var) => match token_for_exec(app, key) {
                Ok(token) => {
                    cmd.env(var, token.access_token.expose());
                }
                Err(err) if err.kind == Kind::NeedsLogin => {
                    skipped.push(skip_for_login(app, key, ctx));
                    continue;
                }
                Err(err) => {
                    app.ui.error(&err);
                    failed.push(format!("{} (no token)", ctx.name));
                    continue;
                }
            },
            None => {
                cmd.env_remove(env::TOKEN);
            }
        }
        // Signals belong to the command only while it runs: Ctrl-C during the next
        // context's refresh must stop the runs, not be lost.
        crate::interrupt::hand_over();
        let ended = run_child(cmd, program);
        crate::interrupt::take_back();
        let ended = ended?;
        if ended.code != 0 {
            failed.push(format!("{} (exit {})", ctx.name, ended.code));
        }
        if ended.interrupted {
            app.ui
                .say("Interrupted; the remaining contexts were not run.");
            return Err(Error::new(Kind::Exit(130), ""));
        }
    }
    if failed.is_empty() && skipped.is_empty() {
        app.ui.say(&format!("All {} runs exited 0.", targets.len()));
        return Ok(());
    }
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(format!(
            "{} of {} runs failed: {}",
            failed.len(),
            targets.len(),
            failed.join(", ")
        ));
    }
    if !skipped.is_empty() {
        parts.push(format!("skipped, needing a login: {}", skipped.join(", ")));
    }
    let err = Error::failure(parts.join("; "));
    Err(if skipped.is_empty() {
        err
    } else {
        err.with_hint("`mycli status --all` shows which login each one needs")
    })
}

/// The context's access token, refreshed first when it expires within five minutes (however
/// short its lifetime: a command may run for a while). Many `exec` started together make one
/// refresh: the others take the token fetched while they waited for the lock.
fn token_for_exec(app: &App, key: &str) -> Result<CachedToken> {
    if let Some(token) = tokens::read(&app.paths, key)
        && token.valid_for(app.now(), EXEC_MARGIN_SECS)
    {
        return Ok(token);
    }
    session::fresh_token(app, key, session::Want::ValidFor(EXEC_MARGIN_SECS))
}

/// The command for one context: `MYCLI_CONTEXT` pinned to its key (the organization id: a
/// name can be renamed, or given to another organization's context, while the command runs;
/// keys win over names when resolving) and the store it came from.
pub fn child(app: &App, key: &str, program: &OsString, rest: &[OsString]) -> Command {
    // Absolute, so a command that changes directory still finds the same store.
    let dir = std::path::absolute(&app.paths.dir).unwrap_or_else(|_| app.paths.dir.clone());
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env(env::CONTEXT, key)
        .env(env::CONFIG_DIR, dir);
    cmd
}

/// An environment variable name: letters, digits and `_`, not starting with a digit.
fn check_var_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::usage(format!(
            "--env {name:?} is not an environment variable name"
        ))
        .with_hint("use letters, digits and _, e.g. --env API_TOKEN"));
    }
    // The token in a variable mycli reads would make a nested mycli take it for a context
    // name, a directory or an issuer, and print it in the error (and `MYCLI_CONTEXT` must stay
    // the context's name); in one the dynamic loader reads, the loader prints it to the
    // stderr of every process.
    let why = if name.starts_with("MYCLI_") && name != env::TOKEN {
        Some("mycli itself reads it")
    } else if name.starts_with("LD_") || name.starts_with("DYLD_") {
        Some("the dynamic loader reads it")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::usage(format!(
            "--env {name} cannot carry the token: {why}"
        ))
        .with_hint(format!(
            "pick the name the command reads its token from, e.g. --env API_TOKEN ({} is the default)",
            env::TOKEN
        ))),
        None => Ok(name),
    }
}

/// How a child ended: its exit code as a shell reports it (128+N for signal N), and whether
/// mycli was asked to stop meanwhile (Ctrl-C, or a signal sent to mycli: a supervisor's
/// SIGTERM ends `--each` too, not only the run it caught).
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub code: u8,
    pub interrupted: bool,
}

/// Runs `cmd` to its end. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to mycli are passed on to
/// the child; the ones the terminal sends (Ctrl-C, a hang-up) reach the child directly, as
/// it is in the same foreground process group, and are not sent twice. A program that cannot
/// be found is exit 127 and one line, as a shell says it; one that cannot be run, 126.
pub fn run_child(mut cmd: Command, program: &OsString) -> Result<Ended> {
    let shown = program.to_string_lossy();
    let forwarder = Forwarder::install()?;
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(
                Kind::Exit(127),
                format!("{shown}: command not found"),
            ));
        }
        Err(e) => {
            return Err(Error::new(
                Kind::Exit(126),
                format!("{shown}: {}", crate::error::plain_io(&e)),
            ));
        }
    };
    let forwarding = forwarder.start(child.id());
    let status = child.wait();
    let interrupted_by_us = forwarding.stop();
    let status = status.map_err(|e| Error::failure(format!("could not wait for {shown}: {e}")))?;
    let (code, by_signal) = exit_code(&status);
    Ok(Ended {
        code,
        interrupted: interrupted_by_us || by_signal == Some(SIGINT),
    })
}

#[cfg(unix)]
const SIGINT: i32 = signal_hook::consts::SIGINT;
#[cfg(not(unix))]
const SIGINT: i32 = 2;

/// The shell's view of an exit status, and the signal that ended it, if one did.
fn exit_code(status: &std::process::ExitStatus) -> (u8, Option<i32>) {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return (
                u8::try_from(128 + sig.clamp(0, 127)).unwrap_or(255),
                Some(sig),
            );
        }
    }
    let code = status.code().unwrap_or(1);
    (u8::try_from(code & 0xff).unwrap_or(1), None)
}

/// Catches the forwarded signals from before the child starts until it ends.
struct Forwarder {
    #[cfg(unix)]
    signals:
        signal_hook::iterator::SignalsInfo<signal_hook::iterator::exfiltrator::origin::WithOrigin>,
}

struct Forwarding {
    #[cfg(unix)]
    handle: signal_hook::iterator::backend::Handle,
    #[cfg(unix)]
    thread: std::thread::JoinHandle<bool>,
}

impl Forwarder {
    fn install() -> Result<Forwarder> {
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGHUP, SIGQUIT, SIGTERM};
            let signals =
                signal_hook::iterator::SignalsInfo::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
                    .map_err(|e| {
                        Error::failure(format!("could not set up signal forwarding: {e}"))
                    })?;
            Ok(Forwarder { signals })
        }
        #[cfg(not(unix))]
        Ok(Forwarder {})
    }

    fn start(self, pid: u32) -> Forwarding {
        #[cfg(unix)]
        {
            use signal_hook::low_level::siginfo::Cause;
            let mut signals = self.signals;
            let handle = signals.handle();
            let thread = std::thread::spawn(move || {
                let mut interrupted = false;
                let target = i32::try_from(pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw);
                for origin in signals.forever() {
                    // Each of these ends mycli outside a run: inside one, it ends the runs
                    // once the command has had it.
                    interrupted = true;
                    if matches!(origin.cause, Cause::Kernel) {
                        continue;
                    }
                    if let (Some(target), Some(sig)) = (
                        target,
                        rustix::process::Signal::from_named_raw(origin.signal),
                    ) {
                        let _ = rustix::process::kill_process(target, sig);
                    }
                }
                interrupted
            });
            Forwarding { handle, thread }
        }
        #[cfg(not(unix))]
        {
            let _ = pid;
            Forwarding {}
        }
    }
}

impl Forwarding {
    /// Stops forwarding; whether a signal arrived meanwhile.
    fn stop(self) -> bool {
        #[cfg(unix)]
        {
            self.handle.close();
            self.thread.join().unwrap_or(false)
        }
        #[cfg(not(unix))]
        false
    }
}

/// A shell-style glob: `*` any run of characters, `?` any one character, the rest literal.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Says that a context is skipped because it needs a new login; its name, for the summary.
fn skip_for_login(app: &App, key: &str, ctx: &Context) -> String {
    app.ui.say(&format!(
        "skipped {:?}: it needs a new login ({})",
        ctx.name,
        session::login_command(key)
    ));
    ctx.name.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob("*", "acme"));
        assert!(glob("*", ""));
        assert!(glob("ac*", "acme"));
        assert!(glob("*me", "acme"));
        assert!(glob("a?me", "acme"));
        assert!(glob("org_01H*", "org_01HABC"));
        assert!(glob("*-prod-*", "acme-prod-eu"));
        assert!(!glob("ac", "acme"));
        assert!(!glob("*x*", "acme"));
        assert!(!glob("a?", "acme"));
        assert!(!glob("é*", "ecole"));
        assert!(glob("é*", "élan"));
    }

    #[test]
    fn variable_names_are_checked() {
        assert!(check_var_name("MYCLI_TOKEN").is_ok());
        assert!(check_var_name("api_token2").is_ok());
        assert!(check_var_name("").is_err());
        assert!(check_var_name("1X").is_err());
        assert!(check_var_name("A=B").is_err());
        assert!(check_var_name("MYCLI_CONTEXT").is_err());
        assert!(check_var_name("LD_PRELOAD").is_err());
        assert!(check_var_name("MYCLI_TOKEN_2").is_err());
        assert!(check_var_name("GITHUB_TOKEN").is_ok());
    }
}
