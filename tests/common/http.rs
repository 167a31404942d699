//! A scripted HTTP/1.1 server on 127.0.0.1, in this process: for identity providers that
//! misbehave on purpose. It reads the request line, the headers and a `content-length` body,
//! asks the script for the answer and writes it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One request as the script sees it.
pub struct Request {
    pub method: String,
    /// The target without its query.
    pub path: String,
    /// The query, decoded.
    pub query: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// One scripted answer; `content-length` (and `connection`) are added by the server.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// 200 with `value` as JSON.
    pub fn json(value: Value) -> Response {
        Response::new(200, "application/json", value.to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What the server does with a connection once it has answered a request on it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// Answers with `connection: close` and closes it.
    Close,
    /// Keeps it open without saying so, and drops it, unanswered, when the next request
    /// arrives on it: what a client sees when a server (Node, Apache: 5 s) closes an idle
    /// keep-alive connection just as the client reuses it.
    OneRequestThenDrop,
}

/// A running server. Its log holds `answered PATH` or `dropped PATH` for every request.
pub struct Server {
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Serves `script` with `Connections::Close`.
pub fn serve(script: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
    serve_with(Connections::Close, script)
}

pub fn serve_with(
    connections: Connections,
    script: impl Fn(&Request) -> Response + Send + Sync + 'static,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    accept(listener, base, connections, script, Ok)
}

/// A server on `https://127.0.0.1:PORT` whose certificate (for the IP 127.0.0.1) is issued by
/// a CA made for this server alone; the CA's PEM file is returned beside it, for
/// `SSL_CERT_FILE`. Connections are closed after one answer.
pub fn serve_tls(
    dir: &Path,
    script: impl Fn(&Request) -> Response + Send + Sync + 'static,
) -> (Server, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mycli test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_file = dir.join("test-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let server = accept(listener, base, Connections::Close, script, move |tcp| {
        let conn = rustls::ServerConnection::new(config.clone()).map_err(|_| ())?;
        Ok(rustls::StreamOwned::new(conn, tcp))
    });
    (server, ca_file)
}

/// Accepts connections on `listener`, each wrapped by `wrap` (TLS or nothing), and answers
/// them with `script`.
fn accept<S, W>(
    listener: TcpListener,
    base: String,
    connections: Connections,
    script: impl Fn(&Request) -> Response + Send + Sync + 'static,
    wrap: W,
) -> Server
where
    S: Read + Write,
    W: Fn(TcpStream) -> Result<S, ()> + Send + Sync + 'static,
{
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let script = Arc::new(script);
    let wrap = Arc::new(wrap);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = seen.clone();
            let script = script.clone();
            let wrap = wrap.clone();
            std::thread::spawn(move || {
                let Ok(stream) = wrap(stream) else { return };
                let mut reader = BufReader::new(stream);
                for n in 0.. {
                    let Some(request) = read_request(&mut reader) else {
                        return;
                    };
                    if n > 0 && connections == Connections::OneRequestThenDrop {
                        seen.lock()
                            .unwrap()
                            .push(format!("dropped {}", request.path));
                        return;
                    }
                    seen.lock()
                        .unwrap()
                        .push(format!("answered {}", request.path));
                    let answer = script(&request);
                    let mut head =
                        format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
                    for (name, value) in &answer.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str(&format!("content-length: {}\r\n", answer.body.len()));
                    if connections == Connections::Close {
                        head.push_str("connection: close\r\n");
                    }
                    head.push_str("\r\n");
                    let writer = reader.get_mut();
                    let _ = writer.write_all(head.as_bytes());
                    let _ = writer.write_all(&answer.body);
                    let _ = writer.flush();
                    if connections == Connections::Close {
                        return;
                    }
                }
            });
        }
    });
    Server { base, log }
}

/// The next request on a connection; `None` when the client has closed it.
fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return None;
    }
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some(Request {
        method,
        path: path.to_string(),
        query: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}
