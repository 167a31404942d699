//! The Device Authorization Grant (RFC 8628): poll at `interval` (5 s when absent), 5 s more
//! on each `slow_down`, stop on `access_denied` and `expired_token`, never show `device_code`.

use std::time::{Duration, Instant};

use super::http::{Http, Reply};
use super::provider::{DeviceAuthorization, Provider, Session};
use crate::error::{Error, Result};

/// Consecutive failed polls (no answer, 5xx, HTML) tolerated before the login gives up.
const MAX_FAILED_POLLS: u32 = 2;

/// Polls until the user approves, refuses, or the code expires. A refusal other than the
/// RFC 8628 ones (such as WorkOS's `organization_selection_required`) is returned as
/// `Reply::Refused` for the caller to handle.
pub async fn poll(
    ui: &crate::ui::Ui,
    http: &Http,
    provider: &Provider,
    auth: &DeviceAuthorization,
) -> Result<Reply<Session>> {
    let mut interval = Duration::from_secs_f64(
        auth.interval
            .filter(|i| i.is_finite() && *i >= 1.0)
            .unwrap_or(5.0)
            .min(60.0),
    );
    let lifetime = auth
        .expires_in
        .filter(|e| e.is_finite() && *e > 0.0)
        .unwrap_or(600.0)
        .min(3600.0);
    let deadline = Instant::now() + Duration::from_secs_f64(lifetime);
    let mut failures = 0;
    loop {
        tokio::time::sleep(interval).await;
        if Instant::now() > deadline {
            return Err(expired());
        }
        let reply = match provider.device_poll(http, &auth.device_code).await {
            Ok(reply) => {
                failures = 0;
                reply
            }
            // The code stays valid through a passing network or server failure: keep polling,
            // but not forever.
            Err(err) if failures < MAX_FAILED_POLLS => {
                failures += 1;
                ui.warn(&format!("{}; polling again", err.message));
                continue;
            }
            Err(err) => return Err(err),
        };
        match reply {
            Reply::Ok(session) => return Ok(Reply::Ok(session)),
            Reply::Refused(err) if err.is("authorization_pending") => {}
            // RFC 8628 §3.5; a 429 is the same request in other words.
            Reply::Refused(err) if err.is("slow_down") || err.status == 429 => {
                interval += Duration::from_secs(5)
            }
            Reply::Refused(err) if err.is("access_denied") => {
                return Err(Error::failure("the sign-in was denied on the device page")
                    .with_hint("run `mycli login` again if that was a mistake"));
            }
            Reply::Refused(err) if err.is("expired_token") => return Err(expired()),
            refused @ Reply::Refused(_) => return Ok(refused),
        }
    }
}

fn expired() -> Error {
    Error::failure("the device code expired before the sign-in was approved")
        .with_hint("run `mycli login` again and approve the new code in time")
}
