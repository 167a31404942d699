//! The Device Authorization Grant (RFC 8628): poll at `interval` (5 s when absent), 5 s more
//! on each `slow_down`, stop on `access_denied` and `expired_token`, never show `device_code`.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

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
    poll_with(ui, auth, || provider.device_poll(http, &auth.device_code)).await
}

/// The timers of [`poll`], asking `ask` for each poll's answer.
async fn poll_with<F, Fut>(
    ui: &crate::ui::Ui,
    auth: &DeviceAuthorization,
    mut ask: F,
) -> Result<Reply<Session>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Reply<Session>>>,
{
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
    // Why the last poll failed, while no answer has arrived since: an approval answered then
    // may have spent the device code, and the next poll then only hears `invalid_grant`.
    let mut lost: Option<String> = None;
    loop {
        tokio::time::sleep(interval).await;
        if Instant::now() > deadline {
            return Err(expired());
        }
        let reply = match ask().await {
            Ok(reply) => {
                failures = 0;
                reply
            }
            // The code stays valid through a passing network or server failure: keep polling,
            // but not forever.
            // Only passing trouble: an answer that arrived but failed mycli's checks (a bad
            // `aud`, no user id, too large) has consumed the device code at a real IdP, and
            // polling again would hide the reason behind "code already used".
            Err(err) if err.transient && failures < MAX_FAILED_POLLS => {
                failures += 1;
                ui.warn(&format!("{}; polling again", err.message));
                lost = Some(err.message);
                continue;
            }
            Err(err) => return Err(err),
        };
        if let Reply::Refused(err) = &reply
            && err.is("invalid_grant")
            && let Some(why) = lost.take()
        {
            return Err(Error::failure(format!(
                "the sign-in was most likely approved, but the identity provider's answer was \
                 lost on the way ({why}), and the device code is now spent ({})",
                err.summary()
            ))
            .with_hint("run `mycli login` again and approve the new code"));
        }
        lost = None;
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::Value;
    use tokio::time::Instant;

    use super::*;
    use crate::auth::IdpError;
    use crate::secret::Secret;

    fn authorization(interval: Option<f64>, expires_in: Option<f64>) -> DeviceAuthorization {
        DeviceAuthorization {
            device_code: Secret::new("dc"),
            user_code: "ABCD-EFGH".into(),
            verification_uri: "https://idp.test/device".into(),
            verification_uri_complete: None,
            expires_in,
            interval,
        }
    }

    fn refused(status: u16, code: &str) -> Result<Reply<Session>> {
        Ok(Reply::Refused(IdpError {
            status,
            code: Some(code.into()),
            description: None,
            body: Value::Null,
        }))
    }

    fn approved() -> Result<Reply<Session>> {
        Ok(Reply::Ok(Session {
            access_token: Secret::new("at"),
            refresh_token: None,
            expires_at: 0,
            organization_id: None,
            organization_name: None,
            user_id: "user_1".into(),
            email: None,
            session_id: None,
            authentication_method: None,
            impersonator: None,
        }))
    }

    /// Polls with `answers` in turn (then `authorization_pending` forever) and returns the
    /// outcome and the seconds after the start at which each poll was made.
    async fn run(
        auth: DeviceAuthorization,
        answers: Vec<Result<Reply<Session>>>,
    ) -> (Result<Reply<Session>>, Vec<u64>) {
        let start = Instant::now();
        let at = RefCell::new(Vec::new());
        let answers = RefCell::new(answers.into_iter());
        let ui = crate::ui::Ui::new(true, false);
        let outcome = poll_with(&ui, &auth, || {
            at.borrow_mut().push(start.elapsed().as_secs());
            let next = answers.borrow_mut().next();
            async move { next.unwrap_or_else(|| refused(400, "authorization_pending")) }
        })
        .await;
        (outcome, at.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn polls_at_the_interval_until_approved() {
        let pending = || refused(400, "authorization_pending");
        let (outcome, at) = run(
            authorization(Some(2.0), None),
            vec![pending(), pending(), approved()],
        )
        .await;
        assert!(matches!(outcome, Ok(Reply::Ok(_))));
        assert_eq!(at, [2, 4, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_interval_defaults_to_5_s_and_is_at_least_1_s() {
        let (_, at) = run(authorization(None, None), vec![approved()]).await;
        assert_eq!(at, [5]);
        let (_, at) = run(authorization(Some(0.1), None), vec![approved()]).await;
        assert_eq!(at, [5]);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_down_and_429_add_5_s_each() {
        let (outcome, at) = run(
            authorization(Some(1.0), None),
            vec![
                refused(400, "slow_down"),
                refused(429, "rate_limited"),
                refused(400, "authorization_pending"),
                approved(),
            ],
        )
        .await;
        assert!(matches!(outcome, Ok(Reply::Ok(_))));
        assert_eq!(at, [1, 7, 18, 29]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_code_expires_without_a_poll_past_its_lifetime() {
        let (outcome, at) = run(authorization(Some(5.0), Some(12.0)), vec![]).await;
        let err = outcome.err().unwrap();
        assert!(err.message.contains("expired"), "{}", err.message);
        assert_eq!(at, [5, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn denied_and_expired_answers_end_the_polling() {
        let (outcome, _) = run(
            authorization(Some(1.0), None),
            vec![refused(400, "access_denied")],
        )
        .await;
        assert!(outcome.err().unwrap().message.contains("denied"));
        let (outcome, _) = run(
            authorization(Some(1.0), None),
            vec![refused(400, "expired_token")],
        )
        .await;
        assert!(outcome.err().unwrap().message.contains("expired"));
    }

    #[tokio::test(start_paused = true)]
    async fn other_refusals_go_back_to_the_caller() {
        let (outcome, _) = run(
            authorization(Some(1.0), None),
            vec![refused(400, "organization_selection_required")],
        )
        .await;
        assert!(
            matches!(outcome, Ok(Reply::Refused(e)) if e.is("organization_selection_required"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_failed_polls_in_a_row_are_tolerated_not_three() {
        let down = || Err(Error::failure("the IdP did not answer").transient());
        let (outcome, at) = run(
            authorization(Some(1.0), None),
            vec![down(), down(), approved()],
        )
        .await;
        assert!(matches!(outcome, Ok(Reply::Ok(_))));
        assert_eq!(at, [1, 2, 3]);
        let (outcome, at) = run(
            authorization(Some(1.0), None),
            vec![down(), down(), down(), approved()],
        )
        .await;
        assert!(outcome.is_err());
        assert_eq!(at, [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_failed_a_check_is_not_polled_again() {
        let refused = || Err(Error::failure("the answer does not say who signed in"));
        let (outcome, at) = run(authorization(Some(1.0), None), vec![refused(), approved()]).await;
        assert!(outcome.is_err());
        assert_eq!(at, [1]);
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_grant_right_after_a_lost_answer_says_the_answer_was_lost() {
        let down = || Err(Error::failure("the connection failed").transient());
        let (outcome, _) = run(
            authorization(Some(1.0), None),
            vec![down(), refused(400, "invalid_grant")],
        )
        .await;
        let err = outcome.err().unwrap();
        assert!(err.message.contains("lost on the way"), "{}", err.message);
        assert!(
            err.message.contains("the connection failed"),
            "{}",
            err.message
        );
        // A pending answer in between shows the failed poll was no approval.
        let (outcome, _) = run(
            authorization(Some(1.0), None),
            vec![
                down(),
                refused(400, "authorization_pending"),
                refused(400, "invalid_grant"),
            ],
        )
        .await;
        assert!(matches!(outcome, Ok(Reply::Refused(e)) if e.is("invalid_grant")));
    }
}
