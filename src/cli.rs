//! The command line, defined once: parsing, help, completions and man pages all come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;

use crate::complete;
pub use crate::output::OutputFormat;
use crate::store::ProviderKind;

#[derive(Debug, Parser)]
#[command(
    name = "mycli",
    version,
    about = "Enterprise single sign-on for the terminal, one session per organization",
    long_about = "Enterprise single sign-on for the terminal.\n\n\
        `mycli login --org ORG_ID` signs you in through your organization's identity provider \
        (WorkOS AuthKit or any OpenID Connect provider) and keeps one session per \
        organization. `mycli token` prints a fresh access token for scripts.",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage, 4 a new login is needed, 130 interrupted.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Use this context for this command only, without changing the current one
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = crate::env::CONTEXT,
        hide_env_values = true,
        add = ArgValueCandidates::new(complete::context_names)
    )]
    pub context: Option<String>,

    /// The config directory [env: MYCLI_CONFIG_DIR] [default: ~/.config/mycli]
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Output format, where a command prints data
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,

    /// Show each HTTP exchange on stderr, secrets redacted
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Print nothing on stderr but errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in to an organization and make its context current
    Login(LoginArgs),
    /// Make a context current (`-` returns to the previous one)
    #[command(visible_alias = "use")]
    Switch(SwitchArgs),
    /// List contexts
    #[command(visible_alias = "ls")]
    Contexts,
    /// Print the current context's name
    Current,
    /// Print a valid access token for the selected context, refreshing it when needed
    Token,
    /// Refresh a context's tokens now
    Refresh(RefreshArgs),
    /// Show who is signed in where, and until when
    Status(StatusArgs),
    /// End a session at the identity provider and forget it here
    Logout(LogoutArgs),
    /// Rename a context
    Rename(RenameArgs),
    /// Pin a context to this directory (`.mycli.toml`), show the pin, or clear it
    #[command(after_help = PIN_EXAMPLES)]
    Pin(PinArgs),
    /// Run a command with a context's access token in its environment
    #[command(after_help = EXEC_EXAMPLES)]
    Exec(ExecArgs),
    /// Start a shell whose commands use one context
    Shell(ShellArgs),
    /// Print the name of the context commands here use (for PS1 and prompt frameworks)
    Prompt,
    /// Print the shell completion script
    Completions(CompletionsArgs),
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

    /// Sign in again even when the organization's session is usable
    #[arg(long)]
    pub force: bool,

    /// Store the refresh token in credentials.toml (0600) instead of the OS keychain
    #[arg(long)]
    pub insecure_storage: bool,

    /// Port of the loopback redirect (default: any free port)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
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

impl Cli {
    pub fn command() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}
