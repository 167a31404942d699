//! The loopback redirect server of RFC 8252: bound to 127.0.0.1 before the browser opens,
//! answering only `/callback`, ignoring any callback whose `state` is not ours (any local
//! process could send one), bounded in time, connections and bytes.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Longest request head we read before answering 431.
const MAX_HEAD: usize = 8 * 1024;
/// How long one connection may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (each bounded by READ_TIMEOUT and MAX_HEAD); beyond that, the
/// oldest is closed to make room.
const MAX_CONNECTIONS: usize = 256;

pub struct Loopback {
    listener: TcpListener,
    pub port: u16,
}

/// What the browser brought back.
pub enum Callback {
    Code(Secret),
    Error(Error),
}

impl Loopback {
    pub async fn bind(port: Option<u16>) -> Result<Loopback> {
        let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .map_err(|e| {
                let err = Error::failure(format!(
                    "could not listen on 127.0.0.1:{} for the sign-in redirect: {}",
                    port.unwrap_or(0),
                    crate::error::plain_io(&e)
                ));
                match port {
                    Some(_) => {
                        err.with_hint("pick another --port, or drop it to use any free port")
                    }
                    None => err,
                }
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::failure(format!("could not read the loopback port: {e}")))?
            .port();
        Ok(Loopback { listener, port })
    }

    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Serves until a callback with our `state` arrives or `timeout` passes. The listener is
    /// dropped on return, releasing the port. `iss_required`: the provider promised an `iss`
    /// on its responses (RFC 9207), so one without it is refused.
    pub async fn wait(
        self,
        state: &Secret,
        issuer: &str,
        iss_required: bool,
        timeout: Duration,
    ) -> Result<Secret> {
        let (tx, mut rx) = mpsc::channel::<Callback>(1);
        // Connections being served, oldest first. When every slot is taken the oldest is
        // closed: a browser sends its request at once, so the oldest is the likeliest to be
        // stalling, and a flood of stalled connections cannot lock the real callback out.
        let mut open = std::collections::VecDeque::<tokio::task::AbortHandle>::new();
        let expected = Arc::new(Expected {
            state: state.clone(),
            issuer: issuer.to_string(),
            iss_required,
        });
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tasks = tokio::task::JoinSet::new();
        let result = loop {
            tokio::select! {
                Some(cb) = rx.recv() => break match cb {
                    Callback::Code(code) => Ok(code),
                    Callback::Error(err) => Err(err),
                },
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        // Out of file descriptors, say: pause instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    while tasks.try_join_next().is_some() {}
                    open.retain(|task| !task.is_finished());
                    if open.len() >= MAX_CONNECTIONS
                        && let Some(oldest) = open.pop_front()
                    {
                        oldest.abort();
                    }
                    let tx = tx.clone();
                    let expected = expected.clone();
                    open.push_back(tasks.spawn(async move {
                        if let Some(cb) = serve(stream, &expected).await {
                            let _ = tx.send(cb).await;
                        }
                    }));
                }
                () = &mut deadline => break Err(Error::failure(format!(
                    "no sign-in arrived within {} s", timeout.as_secs_f64()
                )).with_hint("run `mycli login` again; use `--device` to sign in on another device")),
            }
        };
        tasks.abort_all();
        result
    }
}

struct Expected {
    state: Secret,
    issuer: String,
    iss_required: bool,
}

/// Serves one connection; returns a callback when it carried our state.
async fn serve(mut stream: TcpStream, expected: &Expected) -> Option<Callback> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(Oversize)) => {
            respond(
                &mut stream,
                431,
                "Request too large",
                "This request is too large.",
            )
            .await;
            return None;
        }
        Err(_) => return None,
    };
    let Some((method, target)) = parse_request_line(&head) else {
        respond(
            &mut stream,
            400,
            "Bad request",
            "This is not a sign-in response.",
        )
        .await;
        return None;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        respond(&mut stream, 404, "Not found", "Nothing here.").await;
        return None;
    }
    if method != "GET" {
        respond(
            &mut stream,
            405,
            "Method not allowed",
            "This is not a sign-in response.",
        )
        .await;
        return None;
    }
    let params = CallbackParams::parse(query);
    if params.state.as_deref() != Some(expected.state.expose()) {
        respond(
            &mut stream,
            400,
            "Sign-in failed",
            "This response does not belong to the sign-in in progress and was ignored.",
        )
        .await;
        return None;
    }
    if let Some(iss) = &params.iss
        && iss.trim_end_matches('/') != expected.issuer
    {
        respond(
            &mut stream,
            400,
            "Sign-in failed",
            "The response came from an unexpected identity provider.",
        )
        .await;
        return Some(Callback::Error(
            Error::failure(format!(
                "the sign-in response came from {:?}, not from {:?} (RFC 9207 iss check); \
                 refusing it",
                super::http::clean(iss),
                expected.issuer
            ))
            .with_hint(
                "run `mycli login` again and finish the sign-in in the browser window it opens; \
                 another identity provider answered this one",
            ),
        ));
    }
    if params.iss.is_none() && expected.iss_required {
        respond(
            &mut stream,
            400,
            "Sign-in failed",
            "The response did not say which identity provider sent it.",
        )
        .await;
        return Some(Callback::Error(
            Error::failure(format!(
                "the sign-in response carries no iss, which {:?} promises on every response \
                 (RFC 9207); refusing it",
                expected.issuer
            ))
            .with_hint(
                "run `mycli login` again and finish the sign-in in the browser window it opens; \
                 another identity provider may have answered this one",
            ),
        ));
    }
    if let Some(error) = params.error {
        let description = params.error_description.unwrap_or_default();
        respond(
            &mut stream,
            200,
            "Sign-in failed",
            "Sign-in failed. You can close this tab and return to the terminal.",
        )
        .await;
        let text = if description.is_empty() {
            super::http::clean(&error)
        } else {
            format!(
                "{}: {}",
                super::http::clean(&error),
                super::http::clean(&description)
            )
        };
        let hint = match error.as_str() {
            "access_denied" => {
                "the sign-in was cancelled or denied; run `mycli login` again to retry"
            }
            "organization_invalid" | "invalid_connection_selector" | "connection_invalid" => {
                "check the --org value and that your account belongs to that organization"
            }
            "invalid_request" => {
                "the identity provider refused a parameter of the sign-in (the reason above says which); check --org and --client-id"
            }
            "invalid_scope" | "unauthorized_client" | "unsupported_response_type" => {
                "the client is not set up for this sign-in at the identity provider; check --client-id"
            }
            _ => {
                "run `mycli login` again; if it keeps failing, ask your identity provider's administrator"
            }
        };
        return Some(Callback::Error(
            Error::failure(format!("the identity provider refused the sign-in: {text}"))
                .with_hint(hint),
        ));
    }
    match params.code {
        Some(code) if !code.is_empty() => {
            respond(
                &mut stream,
                200,
                "Signed in",
                "You are signed in. You can close this tab and return to the terminal.",
            )
            .await;
            Some(Callback::Code(Secret::new(code)))
        }
        _ => {
            respond(
                &mut stream,
                400,
                "Sign-in failed",
                "The response carried no authorization code.",
            )
            .await;
            Some(Callback::Error(
                Error::failure("the sign-in response carried no authorization code")
                    .with_hint("run `mycli login` again"),
            ))
        }
    }
}

struct Oversize;

async fn read_head(stream: &mut TcpStream) -> std::result::Result<String, Oversize> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| Oversize)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > MAX_HEAD {
            return Err(Oversize);
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    (version.starts_with("HTTP/") && target.starts_with('/')).then_some((method, target))
}

#[derive(Debug, Default, PartialEq)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub iss: Option<String>,
}

impl CallbackParams {
    /// Parses a callback query. A repeated parameter makes the whole response invalid
    /// (RFC 6749 §3.1), which shows up as a missing state.
    pub fn parse(query: &str) -> CallbackParams {
        let mut p = CallbackParams::default();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(k.to_string()) {
                return CallbackParams::default();
            }
            let slot = match &*k {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "error" => &mut p.error,
                "error_description" => &mut p.error_description,
                "iss" => &mut p.iss,
                _ => continue,
            };
            *slot = Some(v.into_owned());
        }
        p
    }
}

async fn respond(stream: &mut TcpStream, status: u16, title: &str, message: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mycli: {title}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{title}</h1><p>{message}</p></body></html>\n"
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(READ_TIMEOUT, async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_callback_queries() {
        let p = CallbackParams::parse("code=abc&state=xyz&iss=http%3A%2F%2F127.0.0.1");
        assert_eq!(p.code.as_deref(), Some("abc"));
        assert_eq!(p.state.as_deref(), Some("xyz"));
        assert_eq!(p.iss.as_deref(), Some("http://127.0.0.1"));
    }

    #[test]
    fn repeated_parameters_invalidate_the_response() {
        let p = CallbackParams::parse("code=a&state=s&state=t");
        assert_eq!(p, CallbackParams::default());
    }

    #[test]
    fn request_lines_are_strict() {
        assert_eq!(
            parse_request_line("GET /callback?x HTTP/1.1\r\n"),
            Some(("GET", "/callback?x"))
        );
        assert_eq!(parse_request_line("GET http://evil/ HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line("garbage"), None);
    }

    proptest::proptest! {
        #[test]
        fn callback_parsing_never_panics(q in ".*") {
            let _ = CallbackParams::parse(&q);
            let _ = parse_request_line(&q);
        }
    }
}
