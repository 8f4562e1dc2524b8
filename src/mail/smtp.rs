//! The SMTP relay: mail-send opens the connection (TLS, STARTTLS, AUTH);
//! the transaction itself is split so everything but the message's end
//! goes out while the previous message's verdict is made durable, and the
//! end waits until it is (see the delivery worker). With PIPELINING, MAIL,
//! RCPT and DATA go out together, behind the previous message's end.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EXT_CHUNKING, EXT_PIPELINING, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::compose::Outgoing;
use crate::config::{Config, SmtpTls};

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub use crate::domain::delivery::Outcome;
use crate::domain::delivery::{Reply, Trouble};

fn reply_of(r: &Response<String>) -> Reply {
    Reply {
        code: r.code,
        enhanced: (r.esc[0] > 0).then_some(r.esc),
        text: r.message.trim().to_string(),
    }
}

fn classify(r: &Response<String>) -> Outcome {
    Outcome::of_reply(reply_of(r))
}

fn io_error(context: &str, e: impl std::fmt::Display) -> Outcome {
    Outcome::Trouble(Trouble::Connection(format!("{context}: {e}")))
}

/// Escapes lines that start with a dot and ends the body with CRLF; the
/// terminating dot is sent separately. Copies runs between the rare line
/// starts that need a dot (found by SIMD search) rather than line by line.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    if body.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut copied = 0;
    for at in memchr::memmem::find_iter(body, b"\n.") {
        out.extend_from_slice(&body[copied..=at]);
        out.push(b'.');
        copied = at + 1;
    }
    out.extend_from_slice(&body[copied..]);
    if !out.ends_with(b"\r\n") {
        if out.ends_with(b"\n") {
            out.pop();
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[derive(Clone)]
pub struct Relay {
    builder: SmtpClientBuilder<String>,
    tls: SmtpTls,
    helo: String,
    credentials: Option<Credentials<String>>,
    timeout: Duration,
    pub address: String,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("address", &self.address)
            .finish()
    }
}

impl Relay {
    /// The relay from the configuration, or None when mail goes to the outbox.
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        let smtp = &config.smtp;
        let Some(host) = smtp.host.clone() else {
            return Ok(None);
        };
        let timeout = Duration::from_secs(smtp.timeout_secs);
        let helo = smtp
            .helo_name
            .clone()
            .unwrap_or_else(|| config.public_host());
        let mut builder = SmtpClientBuilder::new(host.clone(), smtp.port)?
            .implicit_tls(smtp.tls == SmtpTls::Implicit)
            .helo_host(helo.clone())
            .timeout(timeout)
            // EHLO after TLS is ours, to learn the extensions.
            .say_ehlo(false);
        if smtp.allow_invalid_certs {
            builder = builder.allow_invalid_certs();
        }
        let credentials = match (&smtp.username, &smtp.password) {
            (Some(u), Some(p)) => Some(Credentials::Plain {
                username: u.clone(),
                secret: p.expose().to_string(),
            }),
            _ => None,
        };
        Ok(Some(Self {
            builder,
            tls: smtp.tls,
            helo,
            credentials,
            timeout,
            address: format!("{host}:{}", smtp.port),
        }))
    }

    pub async fn connect(&self) -> Result<Connection, Outcome> {
        let mut socket = None;
        let client: SmtpClient<Box<dyn Stream>> = match self.tls {
            SmtpTls::None => {
                let c = self
                    .builder
                    .connect_plain()
                    .await
                    .map_err(|e| self.connect_error(e))?;
                // The final dot goes out alone after the body: without
                // NODELAY, Nagle holds it for the delayed ACK (~40 ms).
                let _ = c.stream.set_nodelay(true);
                socket = c.stream.as_fd().try_clone_to_owned().ok();
                SmtpClient {
                    stream: Box::new(c.stream),
                    timeout: c.timeout,
                }
            }
            SmtpTls::Starttls | SmtpTls::Implicit => {
                let c = self
                    .builder
                    .connect()
                    .await
                    .map_err(|e| self.connect_error(e))?;
                let _ = c.stream.get_ref().0.set_nodelay(true);
                SmtpClient {
                    stream: Box::new(c.stream),
                    timeout: c.timeout,
                }
            }
        };
        let mut client = client;
        let caps = client
            .capabilities(&self.helo, false)
            .await
            .map_err(|e| self.connect_error(e))?;
        if let Some(credentials) = &self.credentials {
            client
                .authenticate(credentials, &caps)
                .await
                .map_err(|e| self.connect_error(e))?;
        }
        Ok(Connection::open(client, &caps, self.timeout, socket))
    }

    fn connect_error(&self, e: mail_send::Error) -> Outcome {
        match e {
            mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r)
                if r.code >= 500 =>
            {
                let mut reply = reply_of(&r);
                reply.text = format!("relay {}: {}", self.address, reply.text);
                Outcome::Refused(reply)
            }
            other => Outcome::Trouble(Trouble::Connect(format!("relay {}: {other}", self.address))),
        }
    }
}

pub struct Connection {
    client: SmtpClient<Box<dyn Stream>>,
    /// A second handle on the socket of a connection in the clear.
    socket: Option<Arc<OwnedFd>>,
    pipelining: bool,
    /// BDAT lets the body ride with the envelope and the end of the
    /// message be one short command ("BDAT 0 LAST").
    chunking: bool,
    timeout: Duration,
    /// How the message begun by `begin` is ended.
    ending: &'static [u8],
    /// How many of the bytes `end_bytes` gave end the message begun; the
    /// rest begin the next one.
    ended_by: usize,
    /// The dot-stuffed content, written once DATA's 354 has come.
    content: Option<Vec<u8>>,
    /// What `read_head` has to read or report.
    head: Option<Head>,
    /// Bytes read from the relay and not yet parsed: with the envelope
    /// pipelined behind a message's end, one read may hold both answers.
    unread: Vec<u8>,
}

/// The envelope written by `send_head`.
enum Head {
    /// Its replies are on their way.
    Pipelined { chunking: bool },
    /// Answered one command at a time already.
    Answered(Result<(), Failed>),
}

/// A failure inside a transaction, and whether the connection survived it.
pub struct Failed {
    pub outcome: Outcome,
    pub connection_usable: bool,
}

fn broken(o: Outcome) -> Failed {
    Failed {
        outcome: o,
        connection_usable: false,
    }
}

impl Connection {
    /// A connection past EHLO (and STARTTLS, AUTH), ready for messages.
    pub fn open(
        client: SmtpClient<Box<dyn Stream>>,
        caps: &smtp_proto::EhloResponse<String>,
        timeout: Duration,
        socket: Option<OwnedFd>,
    ) -> Self {
        Connection {
            client,
            socket: socket.map(Arc::new),
            pipelining: caps.has_capability(EXT_PIPELINING),
            chunking: caps.has_capability(EXT_CHUNKING),
            timeout,
            ending: b".\r\n",
            ended_by: 0,
            content: None,
            head: None,
            unread: Vec::new(),
        }
    }

    /// The envelope (and with CHUNKING the body) as one pipelined write,
    /// and how many of its bytes come before a body; its replies are read
    /// by `read_head`.
    fn pipelined_head(&mut self, msg: &Outgoing) -> (Vec<u8>, usize) {
        let mut head = format!("MAIL FROM:<{}>\r\nRCPT TO:<{}>\r\n", msg.from, msg.to).into_bytes();
        let commands;
        if self.chunking {
            head.extend_from_slice(format!("BDAT {}\r\n", msg.bytes.len()).as_bytes());
            commands = head.len();
            head.extend_from_slice(&msg.bytes);
            self.ending = b"BDAT 0 LAST\r\n";
            self.content = None;
        } else {
            head.extend_from_slice(b"DATA\r\n");
            commands = head.len();
            self.ending = b".\r\n";
            // Dropped by `read_head` if the relay refuses the envelope.
            self.content = Some(dot_stuff(&msg.bytes));
        }
        self.head = Some(Head::Pipelined {
            chunking: self.chunking,
        });
        (head, commands)
    }

    /// Writes the envelope. With PIPELINING the replies are read by
    /// `read_head`; without it the exchange happens here, one command at a
    /// time. An error here means the connection is lost.
    async fn send_head(&mut self, msg: &Outgoing) -> Result<(), Failed> {
        if self.pipelining {
            let (head, _) = self.pipelined_head(msg);
            return self.write(&head).await.map_err(broken);
        }
        let head = format!(
            "MAIL FROM:<{}>\r\nRCPT TO:<{}>\r\nDATA\r\n",
            msg.from, msg.to
        );
        let mut replies = Vec::with_capacity(3);
        for line in head.as_bytes().split_inclusive(|b| *b == b'\n') {
            self.write(line).await.map_err(broken)?;
            let r = self.read().await.map_err(broken)?;
            let stop = r.code >= 400;
            replies.push(r);
            if stop {
                break;
            }
        }
        let checked = self.check_data_replies(&replies).await;
        self.ending = b".\r\n";
        self.content = checked.is_ok().then(|| dot_stuff(&msg.bytes));
        self.head = Some(Head::Answered(checked));
        Ok(())
    }

    /// All of the message but its end: the envelope, answered, and the
    /// content. The relay does nothing with it until `finish`. When the
    /// previous `finish` carried this message's envelope, only its replies
    /// are read here.
    pub async fn begin(&mut self, msg: &Outgoing) -> Result<(), Failed> {
        if self.head.is_none() {
            self.send_head(msg).await?;
        }
        self.read_head().await?;
        match self.content.take() {
            Some(content) => self.write(&content).await.map_err(broken),
            None => Ok(()),
        }
    }

    /// The relay's answers to the envelope `send_head` wrote.
    async fn read_head(&mut self) -> Result<(), Failed> {
        let checked = match self.head.take() {
            Some(Head::Answered(checked)) => checked,
            Some(Head::Pipelined { chunking }) => {
                let replies = self.read_many(3).await.map_err(broken)?;
                if chunking {
                    match replies.iter().find(|r| r.code >= 300) {
                        None => Ok(()),
                        Some(bad) => Err(self.refused(bad).await),
                    }
                } else {
                    self.check_data_replies(&replies).await
                }
            }
            None => Err(broken(Outcome::Trouble(Trouble::Connection(
                "no message was begun".into(),
            )))),
        };
        if checked.is_err() {
            self.content = None;
        }
        checked
    }

    /// MAIL, RCPT and DATA's replies: all well when DATA got its 354.
    async fn check_data_replies(&mut self, replies: &[Response<String>]) -> Result<(), Failed> {
        if let Some(bad) = replies.iter().take(2).find(|r| r.code >= 400) {
            if replies.get(2).is_some_and(|r| r.code == 354) {
                // A server that opened DATA anyway gets an empty message ended at once.
                self.write(b".\r\n").await.map_err(broken)?;
                let _ = self.read().await;
            }
            return Err(self.refused(bad).await);
        }
        match replies.get(2) {
            Some(r) if r.code == 354 => Ok(()),
            Some(r) if r.code >= 400 => Err(self.refused(r).await),
            other => {
                let what = other
                    .map(|r| reply_of(r).to_string())
                    .unwrap_or_else(|| "nothing".into());
                Err(broken(Outcome::Trouble(Trouble::Connection(format!(
                    "unexpected reply to DATA: {what}"
                )))))
            }
        }
    }

    /// A refusal: 421 closes the connection; others leave it usable after RSET.
    async fn refused(&mut self, reply: &Response<String>) -> Failed {
        let outcome = match classify(reply) {
            Outcome::Accepted(r) => {
                Outcome::Trouble(Trouble::Connection(format!("unexpected reply: {r}")))
            }
            other => other,
        };
        if reply.code == 421 {
            return broken(outcome);
        }
        let reset = match self.write(b"RSET\r\n").await {
            Ok(()) => self.read().await.is_ok_and(|r| r.code == 250),
            Err(_) => false,
        };
        Failed {
            outcome,
            connection_usable: reset,
        }
    }

    /// The end of the message `begin` began, and how many of its first
    /// bytes are the end and `next`'s envelope commands (without a BDAT
    /// chunk's body). With PIPELINING, `next`'s envelope rides behind the
    /// end (RFC 2920 lets commands follow the end of a message), so one
    /// round trip carries both; `begin(next)` then reads its replies.
    pub fn end_bytes(&mut self, next: Option<&Outgoing>) -> (Vec<u8>, usize) {
        let mut out = self.ending.to_vec();
        let mut lead = out.len();
        self.ended_by = out.len();
        if let Some(msg) = next.filter(|_| self.pipelining) {
            let (head, commands) = self.pipelined_head(msg);
            out.extend_from_slice(&head);
            lead += commands;
        }
        (out, lead)
    }

    /// The socket, when the connection is in the clear: another thread may
    /// then write a message's end on it (see `recorder::Handoff`).
    pub fn socket(&self) -> Option<&Arc<OwnedFd>> {
        self.socket.as_ref()
    }

    /// Completes when the relay sends something (kept for the next read),
    /// closes, fails, or has been silent for the relay's timeout; never on
    /// a connection over TLS, whose reads may not be cut short. Safe to
    /// cancel. An error or a close shows again at the next read.
    pub async fn answered(&mut self) {
        if self.socket.is_none() {
            return std::future::pending().await;
        }
        let mut buf = [0u8; 4096];
        let read = tokio::time::timeout(self.timeout, self.client.stream.read(&mut buf));
        if let Ok(Ok(n)) = read.await {
            self.unread.extend_from_slice(&buf[..n]);
        }
    }

    /// Writes what `end_bytes` gave, but its first `sent` bytes (written
    /// on the socket already, at `sent_at`), and reads the relay's
    /// verdict, due a timeout after the message's end went out (whatever
    /// of the next message follows it, such as a BDAT chunk). A 421 reply
    /// means the relay is closing the connection.
    pub async fn finish(
        &mut self,
        end: &[u8],
        sent: usize,
        sent_at: Option<std::time::Instant>,
    ) -> Result<Outcome, Failed> {
        let ended_at = sent_at.filter(|_| sent >= self.ended_by);
        if let Some(rest) = end.get(sent..).filter(|r| !r.is_empty()) {
            self.write(rest).await.map_err(broken)?;
        }
        let due = ended_at.map(|at| tokio::time::Instant::from_std(at) + self.timeout);
        let reply = self.read_by(due).await.map_err(broken)?;
        if reply.code == 421 {
            return Err(broken(classify(&reply)));
        }
        Ok(classify(&reply))
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Outcome> {
        tokio::time::timeout(self.timeout, async {
            self.client.stream.write_all(bytes).await?;
            self.client.stream.flush().await
        })
        .await
        .map_err(|_| Outcome::Trouble(Trouble::Timeout("the relay timed out while receiving")))?
        .map_err(|e| io_error("while sending", e))
    }

    async fn read(&mut self) -> Result<Response<String>, Outcome> {
        self.read_by(None).await
    }

    /// One reply, by `due` or else within the relay's timeout.
    async fn read_by(
        &mut self,
        due: Option<tokio::time::Instant>,
    ) -> Result<Response<String>, Outcome> {
        let due = due.unwrap_or_else(|| tokio::time::Instant::now() + self.timeout);
        tokio::time::timeout_at(due, self.next_reply())
            .await
            .map_err(|_| Outcome::Trouble(Trouble::Timeout("the relay did not answer in time")))?
    }

    async fn read_many(&mut self, n: usize) -> Result<Vec<Response<String>>, Outcome> {
        let mut replies = Vec::with_capacity(n);
        for _ in 0..n {
            replies.push(self.read().await?);
        }
        Ok(replies)
    }

    /// One reply, from what was read before or from the stream; bytes
    /// after it stay for the next call.
    async fn next_reply(&mut self) -> Result<Response<String>, Outcome> {
        let mut parser = ResponseReceiver::default();
        let mut buf = [0u8; 4096];
        loop {
            if !self.unread.is_empty() {
                let mut bytes = self.unread.iter();
                match parser.parse(&mut bytes) {
                    Ok(reply) => {
                        let used = self.unread.len() - bytes.as_slice().len();
                        self.unread.drain(..used);
                        return Ok(reply);
                    }
                    // The parser keeps what it has taken so far.
                    Err(smtp_proto::Error::NeedsMoreData { .. }) => self.unread.clear(),
                    Err(_) => return Err(io_error("reading the reply", "unparseable reply")),
                }
            }
            let n = self
                .client
                .stream
                .read(&mut buf)
                .await
                .map_err(|e| io_error("reading the reply", e))?;
            if n == 0 {
                return Err(io_error(
                    "reading the reply",
                    "the relay closed the connection",
                ));
            }
            self.unread.extend_from_slice(&buf[..n]);
        }
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if self.write(b"QUIT\r\n").await.is_ok() {
                let _ = self.next_reply().await;
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to a relay that never says anything, with the given
    /// EHLO capabilities.
    async fn silent_relay(capabilities: u32) -> (Connection, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let (stream, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(to), listener.accept());
        let stream = stream.unwrap();
        let socket = stream.as_fd().try_clone_to_owned().unwrap();
        let client: SmtpClient<Box<dyn Stream>> = SmtpClient {
            stream: Box::new(stream),
            timeout: TIMEOUT,
        };
        let caps = smtp_proto::EhloResponse {
            capabilities,
            ..Default::default()
        };
        let c = Connection::open(client, &caps, TIMEOUT, Some(socket));
        (c, accepted.unwrap().0)
    }

    const TIMEOUT: Duration = Duration::from_secs(60);

    /// A relay that stays silent after a message's end is given up a
    /// timeout after the end went out, however long the connection waited
    /// in `answered` before it learnt the end had gone, and whatever of
    /// the next message it still had to write (the test's clock is
    /// tokio's, paused).
    #[tokio::test(start_paused = true)]
    async fn a_silent_relay_gets_one_timeout_not_two() {
        let next = Outgoing {
            from: "it@team.example".into(),
            to: "someone@elsewhere.org".into(),
            message_id: "<1@team.example>".into(),
            bytes: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
        };
        for capabilities in [0, EXT_PIPELINING | EXT_CHUNKING] {
            let (mut c, _relay) = silent_relay(capabilities).await;
            let (end, lead) = c.end_bytes(Some(&next));
            // The journal's thread wrote the end and the next envelope's
            // commands now (with CHUNKING, its body is left to write).
            let went = tokio::time::Instant::now();
            c.answered().await;
            let Err(failed) = c.finish(&end, lead, Some(went.into_std())).await else {
                panic!("a verdict from a silent relay");
            };
            assert!(
                matches!(failed.outcome, Outcome::Trouble(Trouble::Timeout(_))),
                "{:?}",
                failed.outcome
            );
            assert_eq!(went.elapsed(), TIMEOUT, "capabilities {capabilities}");
        }
        // An end the connection writes itself has a timeout from then.
        let (mut c, _relay) = silent_relay(0).await;
        let (end, _) = c.end_bytes(None);
        let went = tokio::time::Instant::now();
        assert!(c.finish(&end, 0, None).await.is_err());
        assert_eq!(went.elapsed(), TIMEOUT);
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n");
        assert_eq!(dot_stuff(b".start"), b"..start\r\n");
        assert_eq!(dot_stuff(b"x\n"), b"x\r\n");
        assert_eq!(dot_stuff(b""), b"\r\n");
        assert_eq!(dot_stuff(b"."), b"..\r\n");
        assert_eq!(dot_stuff(b"\n.\n..\r\n.x"), b"\n..\n...\r\n..x\r\n");
    }

    /// The same bytes as stuffing line by line, on bodies made of every
    /// mix of the bytes that matter.
    #[test]
    fn dot_stuffing_matches_line_by_line() {
        fn line_by_line(body: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            for line in body.split_inclusive(|b| *b == b'\n') {
                if line.first() == Some(&b'.') {
                    out.push(b'.');
                }
                out.extend_from_slice(line);
            }
            if !out.ends_with(b"\r\n") {
                if out.ends_with(b"\n") {
                    out.pop();
                }
                out.extend_from_slice(b"\r\n");
            }
            out
        }
        let alphabet = [b'.', b'\r', b'\n', b'a'];
        for len in 0..=6u32 {
            for n in 0..4usize.pow(len) {
                let body: Vec<u8> = (0..len).map(|i| alphabet[n / 4usize.pow(i) % 4]).collect();
                assert_eq!(dot_stuff(&body), line_by_line(&body), "{body:?}");
                // Long enough for the vector search, at every offset
                // across its 16- and 32-byte chunks.
                if len == 4 {
                    for at in 0..40 {
                        let mut long = vec![b'x'; 96];
                        long.splice(at..at, body.iter().copied());
                        assert_eq!(dot_stuff(&long), line_by_line(&long), "{long:?}");
                    }
                }
            }
        }
    }
}
