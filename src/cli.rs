//! The command line, defined once: parsing, help, completions and man pages all come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;

use crate::complete;
pub use crate::vocab::OutputFormat;
use crate::vocab::ProviderKind;

#[derive(Debug, Parser)]
#[command(
    name = "mycli",
    version,
    about = "Enterprise single sign-on for the terminal, one session per organization",
    long_about = "Enterprise single sign-on for the terminal.\n\n\
        `mycli login --org ORG_ID` signs you in through your organization's identity provider \
        (WorkOS AuthKit or any OpenID Connect provider) and keeps one session per \
        organization. `mycli token` prints a fresh access token for scripts.",
    after_help = MYCLI_EXAMPLES,
    propagate_version = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Use this context for this command only, without changing the current one
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        value_name = "NAME",
        env = crate::env::CONTEXT,
        hide_env_values = true,
        add = ArgValueCandidates::new(complete::context_names)
    )]
    pub context: Option<String>,

    /// The config directory [env: MYCLI_CONFIG_DIR] [default: ~/.config/mycli]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Output format of the commands that print data (contexts, status, token)
    #[arg(
        short = 'o',
        long,
        global = true,
        help_heading = GLOBAL,
        value_enum,
        value_name = "FORMAT"
    )]
    pub output: Option<OutputFormat>,

    /// Show each HTTP exchange on stderr, secrets redacted
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub verbose: bool,

    /// Print nothing on stderr but errors and the URL or code a sign-in needs
    #[arg(
        short,
        long,
        global = true,
        help_heading = GLOBAL,
        conflicts_with = "verbose"
    )]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in to an organization and make its context current
    #[command(
        long_about = "Sign in to an organization and make its context current.\n\n\
            With a browser (BROWSER is set, or a desktop session outside SSH), mycli opens the \
            identity provider's page and receives the answer on a loopback port (PKCE). \
            Without one, or with --device, it prints a URL and a code to enter on any device. \
            Already signed in to that organization: it switches to it without a browser \
            (--force signs in again). Signing in again to a known context reuses the provider, \
            issuer and client id it remembers.",
        after_help = LOGIN_EXAMPLES
    )]
    Login(LoginArgs),
    /// Make a context current (`-` returns to the previous one)
    #[command(visible_alias = "use", after_help = SWITCH_EXAMPLES)]
    Switch(SwitchArgs),
    /// List contexts
    #[command(visible_alias = "ls", after_help = CONTEXTS_EXAMPLES)]
    Contexts,
    /// Print the current context's name
    #[command(after_help = CURRENT_EXAMPLES)]
    Current,
    /// Print a valid access token for the selected context, refreshing it when needed
    #[command(after_help = TOKEN_EXAMPLES)]
    Token,
    /// Refresh a context's tokens now
    #[command(after_help = REFRESH_EXAMPLES)]
    Refresh(RefreshArgs),
    /// Show who is signed in where, and until when
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// End a session at the identity provider and forget it here
    #[command(after_help = LOGOUT_EXAMPLES)]
    Logout(LogoutArgs),
    /// Rename a context
    #[command(after_help = RENAME_EXAMPLES)]
    Rename(RenameArgs),
    /// Pin a context to this directory (`.mycli.toml`), show the pin, or clear it
    #[command(after_help = PIN_EXAMPLES)]
    Pin(PinArgs),
    /// Run a command with a context's access token in its environment
    #[command(after_help = EXEC_EXAMPLES)]
    Exec(ExecArgs),
    /// Start a shell whose commands use one context
    #[command(after_help = SHELL_EXAMPLES)]
    Shell(ShellArgs),
    /// Print the name of the context commands here use (for PS1 and prompt frameworks)
    #[command(after_help = PROMPT_EXAMPLES)]
    Prompt,
    /// Print the shell completion script
    #[command(
        long_about = "Print the shell completion script.\n\n\
            Context names complete on <TAB> (`mycli switch <TAB>`): the script asks mycli, which \
            reads config.toml only. Where each shell's script goes:\n\n  \
            bash        source <(mycli completions bash)   in ~/.bashrc, or save it as\n              \
                        ~/.local/share/bash-completion/completions/mycli\n  \
            zsh         mycli completions zsh > \"${fpath[1]}/_mycli\"   (any $fpath directory,\n              \
                        before compinit), or source <(mycli completions zsh) after compinit\n  \
            fish        mycli completions fish > ~/.config/fish/completions/mycli.fish\n  \
            powershell  mycli completions powershell | Out-String | Invoke-Expression\n              \
                        in your $PROFILE\n  \
            elvish      eval (mycli completions elvish | slurp)   in ~/.config/elvish/rc.elv",
        after_help = COMPLETIONS_EXAMPLES
    )]
    Completions(CompletionsArgs),
    /// Print help for a command, or a topic (`mycli help environment`)
    #[command(after_help = HELP_EXAMPLES)]
    Help(HelpArgs),
}

impl Command {
    /// The `-o` formats each command understands. Anything else is a usage error (exit 2):
    /// a format a command cannot honour is refused, never silently ignored.
    pub fn output_formats(&self) -> &'static [OutputFormat] {
        use OutputFormat::{ExecCredential, Json, Name, Table};
        match self {
            Command::Contexts | Command::Status(_) => &[Table, Json, Name],
            Command::Token => &[Json, ExecCredential],
            _ => &[],
        }
    }

    /// The command's name as typed after `mycli`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Login(_) => "login",
            Command::Switch(_) => "switch",
            Command::Contexts => "contexts",
            Command::Current => "current",
            Command::Token => "token",
            Command::Refresh(_) => "refresh",
            Command::Status(_) => "status",
            Command::Logout(_) => "logout",
            Command::Rename(_) => "rename",
            Command::Pin(_) => "pin",
            Command::Exec(_) => "exec",
            Command::Shell(_) => "shell",
            Command::Prompt => "prompt",
            Command::Completions(_) => "completions",
            Command::Help(_) => "help",
        }
    }
}

/// The heading of the options every command takes.
const GLOBAL: &str = "Global options";

const MYCLI_EXAMPLES: &str = "Examples:
  mycli login --org org_01H93RZAP85YGYZJXYPAZ9QTXF --name acme
  mycli contexts
  mycli switch acme
  curl -H \"Authorization: Bearer $(mycli token)\" https://api.example.com/me

Exit codes: 0 success, 1 failure, 2 usage, 4 a new login is needed, 130 interrupted.
`mycli help environment` lists the environment variables.";

const LOGIN_EXAMPLES: &str = "Examples:
  mycli login --org org_01H93RZAP85YGYZJXYPAZ9QTXF --name acme
  mycli login --provider oidc --issuer https://idp.example.com --client-id mycli --org acme
  mycli login --org acme --device        # sign in on another device (a phone, a laptop)
  mycli login --context acme --force     # sign in again with what acme remembers";

const SWITCH_EXAMPLES: &str = "Examples:
  mycli switch acme
  mycli switch org_01H93RZAP85YGYZJXYPAZ9QTXF
  mycli switch -          # back to the previous context";

const CONTEXTS_EXAMPLES: &str = "Examples:
  mycli contexts
  mycli contexts -o json | jq -r '.[] | select(.needs_login) | .name'
  mycli contexts -o name | fzf | xargs mycli switch";

const CURRENT_EXAMPLES: &str = "Examples:
  mycli current
  mycli --context acme current     # the context a command would use

For a shell prompt, `mycli prompt` is faster and prints nothing when no context applies.";

const TOKEN_EXAMPLES: &str = "Examples:
  curl -H \"Authorization: Bearer $(mycli token)\" https://api.example.com/me
  mycli token --context acme
  mycli token -o json | jq -r .expires_at
  mycli token -o exec-credential     # as a kubectl exec credential plugin

Exit code 4 means a new login is needed; the hint says which `mycli login` to run.";

const REFRESH_EXAMPLES: &str = "Examples:
  mycli refresh
  mycli refresh acme
  mycli refresh --all";

const STATUS_EXAMPLES: &str = "Examples:
  mycli status --all      # every context: who, state, token expiry, which one is selected here
  mycli status
  mycli status acme -o json
  mycli status || mycli login --context \"$(mycli current)\"   # exit 4: sign in again";

const LOGOUT_EXAMPLES: &str = "Examples:
  mycli logout
  mycli logout acme
  mycli logout --all";

const RENAME_EXAMPLES: &str = "Examples:
  mycli rename org_01H93RZAP85YGYZJXYPAZ9QTXF acme";

const COMPLETIONS_EXAMPLES: &str = "Examples:
  mycli completions zsh > \"${fpath[1]}/_mycli\"
  mycli completions fish > ~/.config/fish/completions/mycli.fish";

const SHELL_EXAMPLES: &str = "Examples:
  mycli shell acme        # a sub-shell where every mycli command uses acme; `exit` returns";

const PROMPT_EXAMPLES: &str = "Examples:
  PS1='[$(mycli prompt)] \\$ '          # bash
  PROMPT='[$(mycli prompt)] %# '       # zsh, with setopt prompt_subst";

const HELP_EXAMPLES: &str = "Examples:
  mycli help login
  mycli help environment      # every environment variable mycli reads";

/// `mycli help environment`, and the ENVIRONMENT section of the man pages: every variable
/// mycli reads.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "MYCLI_CONFIG_DIR",
        "The store directory (as --config-dir). Default: $XDG_CONFIG_HOME/mycli, ~/.config/mycli.",
    ),
    (
        "MYCLI_CONTEXT",
        "The context for this command (as --context); the current one is not changed.",
    ),
    (
        "MYCLI_PROVIDER",
        "The provider kind for a new login: workos (default) or oidc.",
    ),
    (
        "MYCLI_ISSUER",
        "The OIDC issuer, or the WorkOS API base URL, for a new login.",
    ),
    (
        "MYCLI_CLIENT_ID",
        "The OAuth client id for a new login (WORKOS_CLIENT_ID is read too).",
    ),
    (
        "MYCLI_ORG_CLAIM",
        "The claim naming the organization in OIDC tokens (default org_id).",
    ),
    (
        "MYCLI_CREDENTIAL_STORE",
        "Where refresh tokens go: auto (default: the OS keychain, else credentials.toml), keychain (never fall back) or file.",
    ),
    (
        "MYCLI_HTTP_TIMEOUT",
        "Seconds per HTTP request to the identity provider (default 30).",
    ),
    (
        "MYCLI_LOGIN_TIMEOUT",
        "Seconds to wait for the browser sign-in (default 300).",
    ),
    (
        "MYCLI_LOCK_TIMEOUT",
        "Seconds to wait for a lock on the store (default 10).",
    ),
    (
        "MYCLI_KEYCHAIN_TIMEOUT",
        "Seconds per OS keychain call (default 3).",
    ),
    (
        "MYCLI_CEILING_DIRS",
        "Directories (:-separated) the search for a .mycli.toml pin does not climb past.",
    ),
    (
        "MYCLI_TOKEN",
        "Set by `mycli exec` for its command: the access token (--env NAME renames it).",
    ),
    (
        "KUBERNETES_EXEC_INFO",
        "Set by kubectl for `mycli token -o exec-credential`: the ExecCredential version it wants.",
    ),
    ("SHELL", "The shell `mycli shell` starts (sh when unset)."),
    (
        "BROWSER",
        "The browser command for sign-in pages (a :-separated list; %s is the URL). Set, it also means a browser can be opened.",
    ),
    ("NO_COLOR", "Set and not empty: no colour on stderr."),
    (
        "DISPLAY, WAYLAND_DISPLAY, SSH_CONNECTION, SSH_TTY",
        "Whether a browser can be opened here; without one, login uses the device code flow.",
    ),
];

/// The FILES section of the man pages.
pub const FILES: &[(&str, &str)] = &[
    (
        "~/.config/mycli/config.toml",
        "The contexts and the provider defaults (hand-editable; never a secret).",
    ),
    (
        "~/.config/mycli/current.toml",
        "The current and previous context.",
    ),
    (
        "~/.config/mycli/credentials.toml",
        "Refresh tokens when the OS keychain is not used (0600).",
    ),
    (
        "~/.config/mycli/tokens/",
        "Cached access tokens (0600), so `mycli token` needs neither network nor keychain.",
    ),
    (
        "~/.config/mycli/locks/",
        "Lock files of the store and of each context's refresh.",
    ),
];

/// The EXIT STATUS section of the man pages.
pub const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "Failure: the identity provider is down, slow or answered badly; a corrupt store; an unknown context; no current context.",
    ),
    ("2", "Usage: a bad flag or value."),
    (
        "4",
        "A new login is needed: no session for the selected context, or its refresh token expired or was revoked.",
    ),
    (
        "130",
        "Interrupted (Ctrl-C, SIGTERM, or SIGHUP when the terminal closes); the store is left whole.",
    ),
    (
        "other",
        "`mycli exec` and `mycli shell` exit with their command's status: its exit code, 128+N when signal N ended it, 127 when it was not found, 126 when it could not be run.",
    ),
];

/// `mycli help environment`.
pub fn environment_help() -> String {
    let mut text = String::from(
        "Environment variables mycli reads (a flag on the command line wins over them):\n\n",
    );
    for (name, what) in ENVIRONMENT {
        text.push_str(&format!("  {name}\n      {what}\n"));
    }
    text.push_str(
        "\nProvider settings for a new login come from the flag, then the environment, then \
         the [provider] table of config.toml. A context keeps the provider it was created with.\n",
    );
    text
}

#[derive(Debug, Args)]
pub struct HelpArgs {
    /// A command (`login`, `switch`, ...) or a topic: `environment`
    #[arg(value_name = "COMMAND|TOPIC")]
    pub topic: Vec<String>,
}

const PIN_EXAMPLES: &str = "Examples:
  mycli pin acme              # .mycli.toml: organization = \"org_...\" (commit it)
  mycli pin acme --personal   # .mycli.toml: context = \"acme\" (your name for it)
  mycli pin                   # which pin applies here, and its file
  mycli pin --clear           # remove .mycli.toml from this directory

Selection, highest first: --context, MYCLI_CONTEXT, the nearest .mycli.toml (the search
stops at MYCLI_CEILING_DIRS entries), the current context.";

const EXEC_EXAMPLES: &str = "Examples:
  mycli exec -- sh -c 'curl -H \"Authorization: Bearer $MYCLI_TOKEN\" https://api.example.com'
  mycli --context acme exec --env API_TOKEN -- ./deploy.sh
  mycli exec --each '*' -- ./report.sh      # once per context, one after the other
  mycli exec --each 'org_01H*' --no-token -- mycli status

The command runs with MYCLI_CONTEXT set, so every mycli it starts uses the same context. Its
exit code is mycli's (128+N when a signal N ended it); 127 when it cannot be found.";

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The organization to sign in to (WorkOS `org_...` id, or the OIDC `organization`)
    #[arg(long, value_name = "ORG_ID")]
    pub org: Option<String>,

    /// Name of the context (default: from the organization's name or id)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Use the device code flow (sign in on any device)
    #[arg(long)]
    pub device: bool,

    /// Do not open a browser; print the sign-in URL instead (with --device: the device page)
    #[arg(long)]
    pub no_browser: bool,

    /// Do not draw the QR code of the device flow's sign-in URL (drawn only on a terminal)
    #[arg(long)]
    pub no_qr: bool,

    /// Sign in again even when the organization's session is usable
    #[arg(long)]
    pub force: bool,

    /// Store the refresh token in credentials.toml (0600) instead of the OS keychain
    #[arg(long)]
    pub insecure_storage: bool,

    /// Port of the loopback redirect (default: any free port)
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..),
        conflicts_with = "device"
    )]
    pub port: Option<u16>,

    /// Pre-fill the sign-in page with this email
    #[arg(long, value_name = "EMAIL")]
    pub login_hint: Option<String>,

    /// Identity provider kind [env: MYCLI_PROVIDER] [default: workos]
    #[arg(long, value_enum, value_name = "KIND")]
    pub provider: Option<ProviderKind>,

    /// Issuer (OIDC) or API base URL (WorkOS) [env: MYCLI_ISSUER]
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,

    /// OAuth client id [env: MYCLI_CLIENT_ID, WORKOS_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// Context name, organization id, or `-` for the previous context (none: pick from a list)
    #[arg(value_name = "NAME|ORG_ID|-", add = ArgValueCandidates::new(complete::context_names))]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The context to pin here, by name or organization id
    #[arg(value_name = "NAME|ORG_ID", add = ArgValueCandidates::new(complete::context_names))]
    pub target: Option<String>,

    /// Write the context's name (personal) instead of its organization id (shareable)
    #[arg(long, requires = "target")]
    pub personal: bool,

    /// Remove the .mycli.toml of this directory
    #[arg(long, conflicts_with_all = ["target", "personal"])]
    pub clear: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Run the command once per context whose name or organization id matches this glob
    /// (`*` and `?`; '*' for all)
    #[arg(long, value_name = "PATTERN")]
    pub each: Option<String>,

    /// The variable that carries the access token
    #[arg(long = "env", value_name = "NAME", default_value = crate::env::TOKEN)]
    pub env_name: String,

    /// Do not put an access token in the environment
    #[arg(long, conflicts_with = "env_name")]
    pub no_token: bool,

    /// The command and its arguments
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The context for the shell (default: the one commands here use)
    #[arg(value_name = "NAME|ORG_ID", add = ArgValueCandidates::new(complete::context_names))]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Context to refresh (default: the selected context)
    #[arg(value_name = "NAME", add = ArgValueCandidates::new(complete::context_names))]
    pub name: Option<String>,

    /// Refresh every context
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Context to show (default: the selected context)
    #[arg(value_name = "NAME", add = ArgValueCandidates::new(complete::context_names))]
    pub name: Option<String>,

    /// Every context, one line each (exit 4 when any needs a login)
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Context to log out of (default: the selected context)
    #[arg(value_name = "NAME", add = ArgValueCandidates::new(complete::context_names))]
    pub name: Option<String>,

    /// Log out of every context
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    /// Current name of the context
    #[arg(value_name = "OLD", add = ArgValueCandidates::new(complete::context_names))]
    pub old: String,

    /// New name
    #[arg(value_name = "NEW")]
    pub new: String,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

/// `--provider`: the words of `vocab`, so the CLI framework stays out of the store.
impl ValueEnum for ProviderKind {
    fn value_variants<'a>() -> &'a [Self] {
        ProviderKind::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// `--output`: the words of `vocab`.
impl ValueEnum for OutputFormat {
    fn value_variants<'a>() -> &'a [Self] {
        OutputFormat::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let value = clap::builder::PossibleValue::new(self.as_str());
        Some(match self {
            OutputFormat::ExecCredential => {
                value.help("A Kubernetes ExecCredential (`mycli token` only)")
            }
            _ => value,
        })
    }
}

impl Cli {
    pub fn command() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}
