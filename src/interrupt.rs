//! Ctrl-C and SIGTERM: exit 130 at once, except while a rotated refresh token is in flight.
//!
//! From the moment a refresh request is sent until the rotated secret is saved, the identity
//! provider may already have retired the stored secret: exiting then loses the session. In that
//! window (`defer`) the first signal is remembered and the process exits 130 right after the
//! save; a second signal exits at once.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ui::Ui;

/// Exit code of an interrupted command (spec §3).
pub const EXIT: i32 = 130;

struct State {
    /// Inside a `Deferred` window: the Ui to say so with.
    deferred: Option<Ui>,
    /// Signals received inside the current window.
    pending: u32,
    /// A child program (`mycli exec`, `mycli shell`) has the terminal: signals are its.
    handed_over: bool,
    /// What to say when a signal ends the command (`login`: nothing was stored).
    note: Option<&'static str>,
}

static STATE: Mutex<State> = Mutex::new(State {
    deferred: None,
    pending: 0,
    handed_over: false,
    note: None,
});

/// What a login says when cancelled before it stores anything.
pub const NOTHING_STORED: &str = "Cancelled; nothing was stored.";

/// Sets (or clears) the line printed when a signal ends the command from now on.
pub fn note_on_cancel(note: Option<&'static str>) {
    state().note = note;
}

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the handling of SIGINT, SIGTERM and SIGHUP (the terminal or the ssh session closed)
/// for the whole process: each is an interruption, deferred while a refresh is in flight so its
/// rotated secret is saved (the default action of SIGHUP would kill mycli in that window and
/// cost the session). Every write is an atomic rename and every lock is released by the OS, so
/// exiting at any other point leaves the store whole, and the loopback port closes with the
/// process.
pub fn install() {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    on_signal();
                }
            });
    }
}

fn on_signal() {
    let mut st = state();
    if st.handed_over {
        return;
    }
    st.pending = st.pending.saturating_add(1);
    match st.deferred {
        Some(ui) if st.pending == 1 => ui.warn(
            "finishing the refresh so the session is not lost; press Ctrl-C again to quit now \
             (the session may then need a new login)",
        ),
        _ => {
            // The shell's prompt must not land on the `^C` line.
            match st.note {
                Some(note) => crate::ui::emit!("\n{note}"),
                None if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
                    crate::ui::emit!()
                }
                None => {}
            }
            exit()
        }
    }
}

fn exit() -> ! {
    std::process::exit(EXIT)
}

/// From now on SIGINT and SIGTERM no longer end mycli: a command that runs another program
/// (`exec`, `shell`) passes them on to it and exits with its status.
pub fn hand_over() {
    state().handed_over = true;
}

/// The child program has ended: SIGINT and SIGTERM end mycli again (between the runs of
/// `exec --each`, while it refreshes the next context's token).
pub fn take_back() {
    state().handed_over = false;
}

/// Whether a signal arrived inside the current deferred window.
pub fn pending() -> bool {
    state().pending > 0
}

/// Defers SIGINT and SIGTERM until the returned guard is dropped; the drop exits 130 when one
/// arrived meanwhile.
pub fn defer(ui: Ui) -> Deferred {
    let mut st = state();
    st.deferred = Some(ui);
    st.pending = 0;
    Deferred(())
}

#[must_use = "signals stay deferred only while the guard lives"]
pub struct Deferred(());

impl Drop for Deferred {
    fn drop(&mut self) {
        let mut st = state();
        st.deferred = None;
        if st.pending > 0 {
            exit();
        }
    }
}
