//! A scripted SMTP server on a loopback port: it answers each message's
//! final dot as the script says (accept, a 4xx or 5xx reply, or dropping
//! the connection mid-DATA) and records what it accepted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub enum Step {
    Accept,
    /// Answer the final dot with this reply, e.g. "451 4.3.0 try later".
    Reply(&'static str),
    /// Close the connection in the middle of the message data.
    DropInData,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub rcpt: String,
    pub message_id: String,
}

#[derive(Clone, Default)]
pub struct Peer {
    pub port: u16,
    script: Arc<Mutex<VecDeque<Step>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Replies seen per message, in order: "accept", "451 …", "drop".
    log: Arc<Mutex<Vec<String>>>,
    delay: Arc<Mutex<Duration>>,
    /// Message ends that had the next command behind them in the same read
    /// (the sender pipelined its next envelope behind the end).
    pipelined_ends: Arc<Mutex<usize>>,
    /// Connections: (opened in all, open now, most open at once).
    connections: Arc<Mutex<(usize, usize, usize)>>,
}

impl Peer {
    /// Starts the peer; steps run in order, then every message is accepted.
    pub async fn start(script: Vec<Step>) -> Self {
        Self::start_on(0, script).await
    }

    /// The same on a chosen port (0: any).
    pub async fn start_on(port: u16, script: Vec<Step>) -> Self {
        Self::start_at("127.0.0.1", port, script).await
    }

    /// The same on a chosen loopback address (127.0.0.x) and port.
    pub async fn start_at(ip: &str, port: u16, script: Vec<Step>) -> Self {
        let listener = TcpListener::bind((ip, port)).await.unwrap();
        let peer = Self {
            port: listener.local_addr().unwrap().port(),
            script: Arc::new(Mutex::new(script.into())),
            ..Self::default()
        };
        let p = peer.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let p = p.clone();
                {
                    let mut c = p.connections.lock().unwrap();
                    c.0 += 1;
                    c.1 += 1;
                    c.2 = c.2.max(c.1);
                }
                tokio::spawn(async move {
                    let _ = p.serve(sock).await;
                    p.connections.lock().unwrap().1 -= 1;
                });
            }
        });
        peer
    }

    /// Waits this long before answering each final dot.
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Connections opened in all, and the most open at once.
    pub fn connections(&self) -> (usize, usize) {
        let c = self.connections.lock().unwrap();
        (c.0, c.2)
    }

    pub fn pipelined_ends(&self) -> usize {
        *self.pipelined_ends.lock().unwrap()
    }

    async fn serve(&self, sock: tokio::net::TcpStream) -> std::io::Result<()> {
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 peer.test ESMTP scripted\r\n").await?;
        let mut rcpt = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                w.write_all(b"250-peer.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    .await?;
            } else if upper.starts_with("MAIL")
                || upper.starts_with("RSET")
                || upper.starts_with("NOOP")
            {
                w.write_all(b"250 2.0.0 ok\r\n").await?;
            } else if upper.starts_with("RCPT") {
                rcpt = line[line.find('<').unwrap_or(0) + 1..line.find('>').unwrap_or(line.len())]
                    .to_string();
                w.write_all(b"250 2.1.5 ok\r\n").await?;
            } else if upper.starts_with("DATA") {
                let step = self
                    .script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(Step::Accept);
                w.write_all(b"354 go ahead\r\n").await?;
                if let Step::DropInData = step {
                    let mut buf = [0u8; 64];
                    let _ = r.read(&mut buf).await;
                    self.log.lock().unwrap().push("drop".into());
                    return Ok(());
                }
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        if !r.buffer().is_empty() {
                            *self.pipelined_ends.lock().unwrap() += 1;
                        }
                        break;
                    }
                    data.extend_from_slice(&l);
                }
                let delay = *self.delay.lock().unwrap();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                match step {
                    Step::Accept => {
                        let text = String::from_utf8_lossy(&data);
                        let message_id = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Message-ID: "))
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        let n = {
                            let mut got = self.received.lock().unwrap();
                            got.push(Received {
                                rcpt: rcpt.clone(),
                                message_id,
                            });
                            got.len()
                        };
                        self.log.lock().unwrap().push("accept".into());
                        w.write_all(format!("250 2.0.0 queued as M{n}\r\n").as_bytes())
                            .await?;
                    }
                    Step::Reply(reply) => {
                        self.log.lock().unwrap().push(reply.to_string());
                        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
                        if reply.starts_with("421") {
                            return Ok(());
                        }
                    }
                    Step::DropInData => unreachable!(),
                }
            } else if upper.starts_with("QUIT") {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                w.write_all(b"502 5.5.2 unknown command\r\n").await?;
            }
        }
    }
}
