//! The restart promise's floor for independent sessions: how fast a bare
//! sender goes on this machine while keeping the promise (at most one
//! message per connection accepted and not durably recorded), each
//! session syncing on its own. A blocking client, one thread per session,
//! with no composing and no store: each message's end carries the next
//! envelope (PIPELINING, as Muster sends), and between a message's verdict
//! and the next message's end comes one durable 4 KB write (O_DIRECT +
//! O_DSYNC into a zero-filled file on the disk the stores use). What is
//! left is the round trip and the sync. Over one session nothing can do
//! better; over several, sessions that share syncs (as Muster's
//! connections do) can, so there it is a yardstick, not a bound.
// Only the sending benches use it; the others compile it too.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::Duration;

use super::sink::SinkCount;

const BLOCK: usize = 4096;
/// Blocks of the file each session cycles through, at most.
const SLOTS: usize = 2048;

/// `messages` 5 KB messages to send over sessions whose files are ready,
/// each verdict synced before its session ends the next message.
pub struct Floor {
    messages: usize,
    go: Arc<Barrier>,
    sessions: Vec<JoinHandle<()>>,
}

impl Floor {
    /// Returns once every session's file is ready (zeroing it is not
    /// timed: Muster's journal is made before a send, not during it).
    pub fn ready(address: &str, sessions: usize, messages: usize, dir: &Path) -> Self {
        assert!(sessions > 0, "at least one session");
        let (opened, ready) = std::sync::mpsc::channel();
        let go = Arc::new(Barrier::new(sessions + 1));
        let threads = (0..sessions)
            .map(|k| {
                let share = messages / sessions + usize::from(k < messages % sessions);
                let path = dir.join(format!("floor-{k}"));
                let (address, opened, go) = (address.to_string(), opened.clone(), go.clone());
                std::thread::spawn(move || {
                    let notes = Notes::open(&path, share.clamp(1, SLOTS));
                    let _ = opened.send(());
                    drop(opened);
                    go.wait();
                    // Connecting is timed, as it is for smtp-source and Muster.
                    Session::connect(&address, notes).send(share);
                })
            })
            .collect();
        drop(opened);
        for _ in 0..sessions {
            // A session that panicked never says so: all gone, then an error.
            ready.recv().expect("every floor session readies its file");
        }
        Self {
            messages,
            go,
            sessions: threads,
        }
    }

    /// Sends; the time from the first message until the sink has them all.
    pub fn run(self, sink: &SinkCount) -> Duration {
        // Joined inside: a session that fails ends the bench, not a wait.
        sink.time(self.messages, || {
            self.go.wait();
            for s in self.sessions {
                s.join().expect("a floor session sends all its messages");
            }
        })
    }
}

struct Session {
    out: TcpStream,
    replies: BufReader<TcpStream>,
    notes: Notes,
}

const ENVELOPE: &[u8] =
    b"MAIL FROM:<it@team.example>\r\nRCPT TO:<someone@elsewhere.org>\r\nDATA\r\n";

impl Session {
    /// Connected and greeted.
    fn connect(address: &str, notes: Notes) -> Self {
        let stream = TcpStream::connect(address).expect("the sink answers");
        stream.set_nodelay(true).unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut replies = BufReader::new(stream);
        read_replies(&mut replies, 1);
        out.write_all(b"EHLO floor.test\r\n").unwrap();
        read_replies(&mut replies, 1);
        Self {
            out,
            replies,
            notes,
        }
    }

    fn send(&mut self, messages: usize) {
        if messages == 0 {
            return;
        }
        let mut content =
            b"From: it@team.example\r\nTo: someone@elsewhere.org\r\nSubject: floor\r\n\r\n"
                .to_vec();
        while content.len() < 5120 {
            content.extend_from_slice(&[b'x'; 78]);
            content.extend_from_slice(b"\r\n");
        }
        self.out.write_all(ENVELOPE).unwrap();
        read_replies(&mut self.replies, 3);
        self.out.write_all(&content).unwrap();
        for i in 0..messages {
            let last = i + 1 == messages;
            let mut end = b".\r\n".to_vec();
            if !last {
                end.extend_from_slice(ENVELOPE);
            }
            self.out.write_all(&end).unwrap();
            read_replies(&mut self.replies, if last { 1 } else { 4 });
            if !last {
                self.out.write_all(&content).unwrap();
            }
            self.notes.sync(i);
        }
        self.out.write_all(b"QUIT\r\n").unwrap();
    }
}

/// Reads `n` replies (a reply's last line has a space after its code).
fn read_replies(from: &mut BufReader<TcpStream>, n: usize) {
    let mut line = String::new();
    let mut seen = 0;
    while seen < n {
        line.clear();
        assert!(from.read_line(&mut line).unwrap() > 0, "the sink hung up");
        assert!(!line.starts_with(['4', '5']), "the sink refused: {line}");
        if line.as_bytes().get(3) == Some(&b' ') {
            seen += 1;
        }
    }
}

/// One session's durable notes, written as Muster's delivery journal
/// writes them.
struct Notes {
    slots: usize,
    buffered: File,
    direct: Option<File>,
    room: Vec<u8>,
}

impl Notes {
    /// A file of `slots` zeroed blocks, written in turn.
    fn open(path: &Path, slots: usize) -> Self {
        let buffered = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        buffered.write_all_at(&vec![0; BLOCK * slots], 0).unwrap();
        buffered.sync_all().unwrap();
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)
            .ok();
        Self {
            slots,
            buffered,
            direct,
            room: vec![b'v'; 2 * BLOCK],
        }
    }

    fn sync(&mut self, i: usize) {
        let at = ((i % self.slots) * BLOCK) as u64;
        let offset = self.room.as_ptr().align_offset(BLOCK);
        let block = &self.room[offset..offset + BLOCK];
        if let Some(d) = &self.direct {
            match d.write_all_at(block, at) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    eprintln!("the floor: direct writes refused here; syncing after each write");
                    self.direct = None;
                }
                Err(e) => panic!("cannot write the floor's notes: {e}"),
            }
        }
        self.buffered.write_all_at(block, at).unwrap();
        self.buffered.sync_data().unwrap();
    }
}
