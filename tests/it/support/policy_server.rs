//! An HTTPS server for MTA-STS policies (RFC 8461): on one loopback
//! address, port 443, with a certificate from the test CA valid for each
//! `mta-sts.<domain>` it serves (but those it is told to leave out); it
//! answers
//! `/.well-known/mta-sts.txt` with the policy of the domain the request's
//! Host names (or, when that starts with `HTTP/1.1 `, with it as the whole
//! answer), and keeps every request line and Host it saw, and counts the
//! connections made to it (a refused handshake sends no request).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::destinations::TestCa;

pub struct PolicyServer {
    /// (Host, request line) of each request, in order.
    pub requests: Arc<Mutex<Vec<(String, String)>>>,
    /// Connections accepted, whether or not a request came.
    connections: Arc<AtomicUsize>,
    /// What each policy host is answered, by host.
    answers: Arc<Mutex<HashMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PolicyServer {
    /// `policies`: (domain, policy text); the certificate is not valid for
    /// the policy hosts of the domains in `uncertified`.
    pub async fn start(
        ip: &str,
        ca: &TestCa,
        policies: &[(&str, &str)],
        uncertified: &[&str],
    ) -> Self {
        let hosts: Vec<String> = policies
            .iter()
            .filter(|(d, _)| !uncertified.contains(d))
            .map(|(d, _)| format!("mta-sts.{d}"))
            .collect();
        let (key, cert) = ca.issue_for(&hosts.iter().map(String::as_str).collect::<Vec<_>>());
        let acceptor = acceptor(&key, &cert);
        // MTA-STS policies are fetched from port 443 only (RFC 8461 3.3).
        let listener = tokio::net::TcpListener::bind((ip, 443))
            .await
            .unwrap_or_else(|e| {
                panic!("the MTA-STS tests serve policies on {ip}:443 and cannot bind it ({e}): run them as root or with CAP_NET_BIND_SERVICE")
            });
        let answers: Arc<Mutex<HashMap<String, String>>> = Arc::new(Mutex::new(
            policies
                .iter()
                .map(|(d, p)| (format!("mta-sts.{d}"), p.to_string()))
                .collect(),
        ));
        let bodies = answers.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (acceptor, bodies, seen) = (acceptor.clone(), bodies.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_string();
                    let host = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("host: ")
                                .or_else(|| l.strip_prefix("Host: "))
                        })
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap().push((host.clone(), line.clone()));
                    let body = bodies.lock().unwrap().get(&host).cloned();
                    let answer = match body {
                        Some(raw) if raw.starts_with("HTTP/1.1 ") => raw,
                        Some(body) if line.starts_with("GET /.well-known/mta-sts.txt ") => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    };
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            requests,
            connections,
            answers,
            task,
        }
    }

    /// From now on, `domain`'s policy host answers 404.
    pub fn withdraw(&self, domain: &str) {
        self.answers
            .lock()
            .unwrap()
            .remove(&format!("mta-sts.{domain}"));
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The hosts whose policy was asked for.
    pub fn asked(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(host, _)| host.clone())
            .collect()
    }
}

fn acceptor(key: &Path, cert: &Path) -> tokio_rustls::TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
