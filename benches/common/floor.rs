//! The restart promise's floor: the fastest any sender can go on this
//! machine while keeping it (at most one message per connection accepted
//! and not durably recorded). A plain blocking client, one thread per
//! session, with no composing and no store: each message's end carries
//! the next envelope (PIPELINING, as Muster sends), and between a
//! message's verdict and the next message's end comes one durable 4 KB
//! write (O_DIRECT + O_DSYNC into a zero-filled file on the disk the
//! stores use). What is left is the round trip and the sync, so it bounds
//! what Muster can reach at few sessions; the sending benches print it
//! beside smtp-source, which keeps no promise.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::sink::SinkCount;

const BLOCK: usize = 4096;
/// Blocks of the file each session cycles through.
const SLOTS: usize = 2048;

/// Sends `messages` 5 KB messages over `sessions` sessions to `address`,
/// each verdict synced before the session ends its next message; timed
/// until the sink has them all.
pub fn promise_floor(
    address: &str,
    sessions: usize,
    messages: usize,
    dir: &Path,
    sink: &SinkCount,
) -> Duration {
    let target = sink.now() + messages as u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        for k in 0..sessions {
            let share = messages / sessions + usize::from(k < messages % sessions);
            let path = dir.join(format!("floor-{k}"));
            s.spawn(move || session(address, share, &path));
        }
    });
    sink.reached(target) - start
}

fn session(address: &str, messages: usize, journal: &Path) {
    if messages == 0 {
        return;
    }
    let mut notes = Notes::open(journal);
    let stream = TcpStream::connect(address).expect("the sink answers");
    stream.set_nodelay(true).unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut replies = BufReader::new(stream);
    let envelope = b"MAIL FROM:<it@team.example>\r\nRCPT TO:<someone@elsewhere.org>\r\nDATA\r\n";
    let mut content =
        b"From: it@team.example\r\nTo: someone@elsewhere.org\r\nSubject: floor\r\n\r\n".to_vec();
    while content.len() < 5120 {
        content.extend_from_slice(&[b'x'; 78]);
        content.extend_from_slice(b"\r\n");
    }
    read_replies(&mut replies, 1);
    out.write_all(b"EHLO floor.test\r\n").unwrap();
    read_replies(&mut replies, 1);
    out.write_all(envelope).unwrap();
    read_replies(&mut replies, 3);
    out.write_all(&content).unwrap();
    for i in 0..messages {
        let last = i + 1 == messages;
        let mut end = b".\r\n".to_vec();
        if !last {
            end.extend_from_slice(envelope);
        }
        out.write_all(&end).unwrap();
        read_replies(&mut replies, if last { 1 } else { 4 });
        if !last {
            out.write_all(&content).unwrap();
        }
        notes.sync(i);
    }
    out.write_all(b"QUIT\r\n").unwrap();
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
    buffered: File,
    direct: Option<File>,
    room: Vec<u8>,
}

impl Notes {
    fn open(path: &Path) -> Self {
        let buffered = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        buffered.write_all_at(&vec![0; BLOCK * SLOTS], 0).unwrap();
        buffered.sync_all().unwrap();
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)
            .ok();
        Self {
            buffered,
            direct,
            room: vec![b'v'; 2 * BLOCK],
        }
    }

    fn sync(&mut self, i: usize) {
        let at = ((i % SLOTS) * BLOCK) as u64;
        let offset = self.room.as_ptr().align_offset(BLOCK);
        let block = &self.room[offset..offset + BLOCK];
        if let Some(d) = &self.direct {
            match d.write_all_at(block, at) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.direct = None,
                Err(e) => panic!("cannot write the floor's notes: {e}"),
            }
        }
        self.buffered.write_all_at(block, at).unwrap();
        self.buffered.sync_data().unwrap();
    }
}
